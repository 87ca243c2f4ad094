"""Each service's migrations build exactly the schema its models describe, on PostgreSQL."""

import pytest

from vuonminh.shared import db
from vuonminh.shared.runtime import SERVICE_NAMES, kafka_platform
from vuonminh.shared.settings import Settings
from vuonminh.wiring.testing import migration_drift

pytestmark = pytest.mark.integration


async def test_migrations_match_the_models_on_postgres(database_url, kafka_bootstrap):
    settings = Settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    platform = kafka_platform(settings, SERVICE_NAMES)
    for name, runtime in platform.runtimes.items():
        await db.migrate(runtime.engine, runtime.spec.metadata, service=name)
        assert await migration_drift(runtime.engine, runtime.spec.metadata) == [], name
        await runtime.engine.dispose()
