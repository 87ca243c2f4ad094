"""PostgreSQL faults while orders flow: nothing acknowledged is lost, nothing is dead-lettered.

Each test runs the four services on a scratch database of a PostgreSQL cluster of this module's
own (`private_postgres`: the shared dev server is never stopped or flooded) and on the shared
Kafka, while a shop sends signed webhooks and retries until each is acknowledged. Then it
injects one fault for about FAULT_S seconds:

- stopped: a restart whose shutdown lingers (a session holds a smart shutdown open: new sessions
  are refused with 57P03 while the services' sessions are terminated with 57P01), then stopped
  (connections refused), started again after FAULT_S in all;
- backends_terminated: the services' sessions terminated again and again for FAULT_S;
- connections_exhausted: every connection slot held (new sessions fail with 53300), the
  services' sessions terminated so that they need new ones;
- read_only: `default_transaction_read_only` on (writes fail with 25006), as on a standby just
  after a failover.

Afterwards every acknowledged order must be stored once, shipped once (one shipment per seller)
and counted once, no record may sit on a dead-letter topic, and the same processes must be
live and ready again without a restart.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from vuonminh.wiring.testing import (
    ShopSender,
    eventually,
    log_evidence,
    recovery_problems,
    scratch_database,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULT_S = 5.0
TWO_SELLERS = [
    {"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000},
    {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000},
]
# Log events that explain a lost or parked record.
EVIDENCE = ("consumer.dead_lettered", "consumer.handler_failed", "consumer.restarting", "outbox.relay_failed")


@pytest.fixture
async def database_url(private_postgres):
    """This test's own database on the module's private cluster (overrides conftest's)."""
    await private_postgres.restore()
    async with scratch_database(private_postgres.url) as url:
        try:
            yield url
        finally:
            await private_postgres.restore()  # a failed test may have left it stopped or read-only


async def _stopped(pg) -> None:
    async with pg.stopped(shutting_down_s=FAULT_S / 2):
        await asyncio.sleep(FAULT_S / 2)


async def _backends_terminated(pg) -> None:
    deadline = time.monotonic() + FAULT_S
    while time.monotonic() < deadline:
        await pg.terminate_service_backends()
        await asyncio.sleep(0.2)


async def _connections_exhausted(pg) -> None:
    async with pg.connections_exhausted() as held:
        assert held > 0, "no connection slot was free to take"
        await asyncio.sleep(FAULT_S)


async def _read_only(pg) -> None:
    async with pg.read_only():
        await asyncio.sleep(FAULT_S)


FAULTS: dict[str, Callable[..., Awaitable[None]]] = {
    "stopped": _stopped,
    "backends_terminated": _backends_terminated,
    "connections_exhausted": _connections_exhausted,
    "read_only": _read_only,
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_every_acknowledged_order_survives_a_postgres_fault(
    fault, private_postgres, start_stack, seed_catalog_via, count_rows, exactly_once_problems
):
    stack = await start_stack()
    await seed_catalog_via(stack["catalog"])

    async with ShopSender(stack["orders"].url, prefix=f"PG-{fault}", items=TWO_SELLERS) as shop:
        await shop.wait_acknowledged(20)

        async def flowing() -> bool:  # the fault must meet work in progress in every service
            return await count_rows("SELECT count(*) FROM analytics.shipment_facts") > 0

        await eventually(flowing, timeout_s=60, interval_s=0.2)
        await FAULTS[fault](private_postgres)
        # Orders keep coming after the fault, as they do in production.
        await shop.wait_acknowledged(len(shop.acknowledged) + 20, timeout_s=60)
        await shop.finish()

    problems = await exactly_once_problems(shop.acknowledged)
    problems += await recovery_problems(stack)
    assert not problems, (
        f"after PostgreSQL {fault} for {FAULT_S} s ({len(shop.acknowledged)} orders acknowledged):\n- "
        + "\n- ".join(problems)
        + "\nservices' logs:\n"
        + log_evidence(stack, *EVIDENCE)
    )


def _unready_parts(body: object, path: str = "") -> list[str]:
    """The leaves of a /readyz body that name the database or a consumer and do not say "ok"."""
    if isinstance(body, dict):
        return [part for key, value in body.items() for part in _unready_parts(value, f"{path}/{key}")]
    if isinstance(body, list):
        return [part for n, value in enumerate(body) for part in _unready_parts(value, f"{path}/{n}")]
    if body is True or (isinstance(body, str) and body.lower() in ("ok", "ready", "up")):
        return []
    leaf = f"{path}={body}"
    return [leaf] if isinstance(body, str | bool) and ("database" in leaf or "consumer" in leaf) else []


async def test_while_postgres_is_down_intake_accepts_and_readyz_names_the_database(private_postgres, start_stack):
    # orders takes webhooks (needs only the log) and consumes them (needs the database);
    # logistics only consumes.
    stack = await start_stack(("orders", "logistics"))
    async with ShopSender(stack["orders"].url, prefix="PG-DOWN", items=TWO_SELLERS) as shop:
        await shop.wait_acknowledged(5)
        async with private_postgres.stopped():
            down_since = time.monotonic()
            # A window long enough for a few orders; the assertions below say what happened in it.
            with contextlib.suppress(AssertionError):
                await shop.wait_acknowledged(len(shop.acknowledged) + 10, timeout_s=FAULT_S)
            async with httpx.AsyncClient(timeout=5) as client:
                readiness = {name: await client.get(f"{p.url}/readyz") for name, p in stack.items()}
            down_until = time.monotonic()
        await shop.finish()

    during = shop.attempts_between(down_since, down_until)
    assert during, "no webhook was answered while PostgreSQL was down"
    refused = [a.describe() for a in during if a.status != 202]
    assert not refused, f"intake refused webhooks while only the database was down: {refused[:5]}"

    assert readiness["logistics"].status_code == 503, readiness["logistics"].text
    for name, response in readiness.items():
        assert _unready_parts(response.json()), f"{name}'s /readyz does not name the unready part: {response.text}"
