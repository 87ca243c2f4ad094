"""Each service's migrations build exactly the schema its models describe."""

import pytest

from vuonminh.shared import db
from vuonminh.shared.runtime import SERVICE_NAMES, ServiceRuntime, embedded_platform
from vuonminh.shared.settings import Settings
from vuonminh.wiring.testing import migration_drift


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_migrations_match_the_models_on_sqlite(tmp_path, service):
    platform = embedded_platform(Settings(), tmp_path)
    runtime: ServiceRuntime = platform.service(service)

    await db.migrate(runtime.engine, runtime.spec.metadata, service=service)
    await db.migrate(runtime.engine, runtime.spec.metadata, service=service)  # a restart: nothing to do

    assert await migration_drift(runtime.engine, runtime.spec.metadata) == []
    await runtime.engine.dispose()
