"""Kafka faults: the broker killed while webhooks arrive, and services started while it is down.

The services run on a broker of this module's own (`private_kafka`: the shared dev broker is
never killed), started, `kill -9`ed and started again on the same ports and data, and on a
scratch database of the shared PostgreSQL. A shop sends signed webhooks and retries until each
is acknowledged.

What must hold: intake answers a webhook it cannot append with 503 and Retry-After within
about VUONMINH_INTAKE_TIMEOUT_S (never a hang on the producer's 30 s default), never 202 for an
order that is not in the log; relays and consumers resume by themselves once the broker is back
and every acknowledged order is stored, shipped and counted once. A service started while the
broker is down stays up and reports not ready, and becomes ready when the broker comes.
"""

import asyncio
import contextlib
import time

import httpx
import pytest

from vuonminh.shared.runtime import SERVICE_NAMES
from vuonminh.wiring.testing import ShopSender, eventually, log_evidence, recovery_problems

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTAKE_TIMEOUT_S = 2.0
# The longest a webhook may wait for its answer while the broker is away: the intake timeout
# plus room for a loaded machine.
ANSWER_BOUND_S = INTAKE_TIMEOUT_S + 1.0
TWO_SELLERS = [
    {"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000},
    {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000},
]
EVIDENCE = (
    "orders.intake_unavailable",
    "consumer.restarting",
    "consumer.dead_lettered",
    "consumer.handler_failed",
    "outbox.relay_failed",
)


@pytest.fixture
def kafka_bootstrap(private_kafka) -> str:
    """The module's own broker (overrides conftest's shared one)."""
    return private_kafka.bootstrap


@pytest.fixture
def service_env(service_env):
    return {**service_env, "VUONMINH_INTAKE_TIMEOUT_S": str(INTAKE_TIMEOUT_S)}


def _answer_problems(attempts) -> list[str]:
    """What breaks "each webhook answered 202, or 503 with Retry-After, within ANSWER_BOUND_S"."""
    kinds = {
        "no answer (a hang or a dropped connection)": [a for a in attempts if a.status is None],
        "answered neither 202 nor 503": [a for a in attempts if a.status not in (None, 202, 503)],
        "503 without a Retry-After in seconds": [
            a for a in attempts if a.status == 503 and not (a.retry_after or "").strip().isdigit()
        ],
        f"answered after more than {ANSWER_BOUND_S} s": [
            a for a in attempts if a.status is not None and a.duration_s > ANSWER_BOUND_S
        ],
    }
    return [
        f"{len(found)} of {len(attempts)} webhooks {kind}, e.g. " + "; ".join(a.describe() for a in found[:3])
        for kind, found in kinds.items()
        if found
    ]


async def test_services_started_while_kafka_is_down_wait_and_become_ready(
    private_kafka, start_service, seed_catalog_via, exactly_once_problems
):
    await private_kafka.kill()
    processes = {name: await start_service(name) for name in SERVICE_NAMES}

    async with httpx.AsyncClient(timeout=5) as client:
        for name, process in processes.items():

            async def answers_not_ready(name=name, process=process) -> bool:
                if process.process.poll() is not None:
                    raise AssertionError(
                        f"{name} exited ({process.process.returncode}) because Kafka is down, "
                        f"instead of waiting for it:\n{process.log_tail()}"
                    )
                try:
                    response = await client.get(f"{process.url}/readyz")
                except httpx.HTTPError:
                    return False  # not listening yet
                assert response.status_code != 200, f"{name} reports ready with no broker: {response.text}"
                return True

            await eventually(answers_not_ready, timeout_s=60, interval_s=0.2)

    await private_kafka.start()
    # wait_ready also fails at once if a process exits while the broker starts.
    await asyncio.gather(*(process.wait_ready(timeout_s=90) for process in processes.values()))
    await seed_catalog_via(processes["catalog"])
    async with ShopSender(processes["orders"].url, prefix="KAFKA-LATE", items=TWO_SELLERS) as shop:
        await shop.wait_acknowledged(10)
        await shop.finish()
    problems = await exactly_once_problems(shop.acknowledged)
    assert not problems, "\n".join(problems) + "\nservices' logs:\n" + log_evidence(processes, *EVIDENCE)


async def test_broker_killed_while_webhooks_arrive(private_kafka, start_stack, seed_catalog_via, exactly_once_problems):
    await private_kafka.start()
    stack = await start_stack()
    await seed_catalog_via(stack["catalog"])

    async with ShopSender(stack["orders"].url, prefix="KAFKA-KILL", items=TWO_SELLERS, workers=3) as shop:
        await shop.wait_acknowledged(20)
        killed_at = time.monotonic()
        await private_kafka.kill()

        async def webhooks_met_the_dead_broker() -> bool:
            return len([a for a in shop.attempts if a.started_at >= killed_at and a.status != 202]) >= 5

        with contextlib.suppress(AssertionError):  # the assertions below say what the webhooks met
            await eventually(webhooks_met_the_dead_broker, timeout_s=15)
        await private_kafka.start()
        # Orders keep coming once the broker is back, and must flow again.
        await shop.wait_acknowledged(len(shop.acknowledged) + 20, timeout_s=120)
        await shop.finish(timeout_s=120)

    after_kill = [a for a in shop.attempts if a.ended_at >= killed_at]
    problems = _answer_problems(after_kill)
    if not [a for a in after_kill if a.status == 503]:
        problems.append(f"no webhook was refused with 503 while the broker was down ({len(after_kill)} attempts)")
    problems += await exactly_once_problems(shop.acknowledged)
    problems += await recovery_problems(stack)
    assert not problems, (
        f"broker killed while webhooks arrived ({len(shop.acknowledged)} orders acknowledged):\n- "
        + "\n- ".join(problems)
        + "\nservices' logs:\n"
        + log_evidence(stack, *EVIDENCE)
    )
