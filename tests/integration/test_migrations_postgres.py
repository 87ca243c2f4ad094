"""Each service's migrations build exactly the schema its models describe, on PostgreSQL."""

import pytest

from vuonminh.shared import db
from vuonminh.shared.runtime import SERVICE_NAMES, kafka_platform
from vuonminh.shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_migrations_match_the_models_on_postgres(database_url, kafka_bootstrap):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    platform = kafka_platform(Settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap), SERVICE_NAMES)
    for name, runtime in platform.runtimes.items():
        await db.migrate(runtime.engine, runtime.spec.metadata, service=name)
        async with runtime.engine.connect() as conn:
            drift = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), runtime.spec.metadata))
        assert drift == [], name
        await runtime.engine.dispose()
