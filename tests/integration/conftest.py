"""Integration tests run the services as real processes against Kafka and PostgreSQL.

`scripts/dev-services up` starts both and prints the two variables these tests read. On a
laptop without them the tests skip; in CI (CI=true) a missing broker or database fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest

from vuonminh.shared.runtime import SERVICE_NAMES
from vuonminh.shared.testing import TEST_SECRET, VuonminhProcess, eventually, scratch_database, seed_catalog
from vuonminh.shared.testing import count_rows as count_rows_in


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        message = f'{name} is not set: run `eval "$(scripts/dev-services env)"` after `scripts/dev-services up`'
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return value


@pytest.fixture
def kafka_bootstrap() -> str:
    return _require("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
async def database_url() -> str:
    """A database of this test's own on the PostgreSQL server, dropped afterwards."""
    async with scratch_database(_require("DATABASE_URL")) as url:
        yield url


@pytest.fixture
def service_env(kafka_bootstrap: str, database_url: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "VUONMINH_DIRECT_SECRET": TEST_SECRET,
        # Topics and groups of their own, so tests never read each other's events.
        "VUONMINH_KAFKA_NAMESPACE": f"test-{uuid.uuid4().hex[:8]}.",
        "VUONMINH_TOPIC_PARTITIONS": "3",
    }


@pytest.fixture
async def start_service(service_env, tmp_path):
    """Starts `vuonminh serve <name>` processes; all are stopped at the end of the test."""
    started: list[VuonminhProcess] = []

    async def start(name: str, *, extra_env: dict[str, str] | None = None, port: int | None = None) -> VuonminhProcess:
        process = VuonminhProcess(
            ["serve", name], env={**service_env, **(extra_env or {})}, log_path=tmp_path / f"{name}.log", port=port
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_stack(start_service):
    """Starts services (all four by default) and waits until each is ready.

    `crash=(service, point)` starts that service with VUONMINH_CRASH_POINT set.
    """

    async def start(names=SERVICE_NAMES, *, crash: tuple[str, str] | None = None) -> dict[str, VuonminhProcess]:
        processes = {}
        for name in names:
            env = {"VUONMINH_CRASH_POINT": crash[1]} if crash and crash[0] == name else None
            processes[name] = await start_service(name, extra_env=env)
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        return processes

    return start


@pytest.fixture
def seed_catalog_via(count_rows):
    """Seeds the test catalog through catalog's API, then waits until orders has replicated it."""

    async def seed(catalog: VuonminhProcess) -> None:
        async with httpx.AsyncClient(base_url=catalog.url) as client:
            await seed_catalog(client)

        async def replicated() -> bool:
            return await count_rows("SELECT count(*) FROM orders.catalog_products") == 3

        await eventually(replicated, timeout_s=30)

    return seed


@pytest.fixture
def count_rows(database_url):
    """Runs a COUNT query on the test's database (to check effects, or wait for a replica)."""

    async def count(sql: str, *args: object) -> int:
        return await count_rows_in(database_url, sql, *args)

    return count
