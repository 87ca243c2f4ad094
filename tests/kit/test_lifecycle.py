"""Graceful stop and liveness of the workers (what Kubernetes' SIGTERM and liveness probe rely on)."""

import asyncio
import importlib.util
import sys
from pathlib import Path

from vuonminh.shared.events import SellerRegistered
from vuonminh.shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from vuonminh.shared.outbox import OutboxRelay
from vuonminh.wiring.testing import embedded_client, eventually

# The harness of the delivery-guarantee tests (one service's database and a local log).
_spec = importlib.util.spec_from_file_location("kit_harness", Path(__file__).with_name("test_inbox_outbox.py"))
_harness = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("kit_harness", _harness)
_spec.loader.exec_module(_harness)
Harness, TOPIC, _event = _harness.Harness, _harness.TOPIC, _harness._event


def _relay(h, service: str) -> OutboxRelay:
    return OutboxRelay(service=service, table=h.outbox, engine=h.engine, sessions=h.sessions, producer=h.producer)


async def test_a_consumer_asked_to_stop_finishes_its_batch_commits_and_returns(tmp_path):
    async with Harness(tmp_path) as h:
        for n in range(50):
            await h.producer.send([_event(f"s{n}").to_record()])
        applying = asyncio.Event()
        release = asyncio.Event()

        async def slow_effect(uow, envelope):
            applying.set()
            await release.wait()  # the stop request arrives while this batch is in hand
            await h.record_effect(uow, envelope)

        h.runner._handlers = {SellerRegistered.TYPE: slow_effect}
        task = asyncio.create_task(h.runner.run())
        await asyncio.wait_for(applying.wait(), 10)
        h.runner.request_stop()
        release.set()
        await asyncio.wait_for(task, 10)  # returns by itself: not cancelled

        applied = await h.effect_count()
        assert applied == 50  # the whole poll (up to 200 records) was applied...
        assert await h.transport.log.committed("test-group", TOPIC) == applied  # ...and its offsets committed


async def test_a_relay_asked_to_stop_sends_every_committed_row_then_returns(tmp_path):
    async with Harness(tmp_path) as h:
        relay = OutboxRelay(
            service="kit-stop", table=h.outbox, engine=h.engine, sessions=h.sessions, producer=h.producer
        )
        running = asyncio.create_task(relay.run())
        await asyncio.sleep(0.1)  # the relay is idle, waiting
        for n in range(30):
            async with h.unit_of_work() as uow:
                uow.publish(_event(f"s{n:02d}").data)
        relay.request_stop()
        await asyncio.wait_for(running, 10)

        assert [r.key.decode() for r in await h.records(TOPIC)] == [f"s{n:02d}" for n in range(30)]
        assert await relay.measure_backlog() == (0, 0.0)
        assert OUTBOX_PENDING.labels("kit-stop")._value.get() == 0


async def test_the_backlog_gauges_show_rows_waiting_and_the_age_of_the_oldest(tmp_path):
    async with Harness(tmp_path) as h:
        relay = OutboxRelay(
            service="kit-age", table=h.outbox, engine=h.engine, sessions=h.sessions, producer=h.producer
        )
        for n in range(3):
            async with h.unit_of_work() as uow:
                uow.publish(_event(f"s{n}").data)
        await asyncio.sleep(0.2)
        waiting, age = await relay.measure_backlog()
        assert waiting == 3 and age >= 0.2
        assert OUTBOX_OLDEST_AGE.labels("kit-age")._value.get() == age


async def test_a_consumer_loop_that_stops_turning_fails_liveness(tmp_path):
    async with embedded_client(tmp_path, consumer_liveness_s=3, shutdown_drain_s=0.5) as (client, platform):
        assert (await client.get("/healthz")).status_code == 200
        runner = platform.service("logistics").consumer

        async def never_returns(**_kwargs):
            await asyncio.Event().wait()

        async def polling_replaced():
            return runner._consumer is not None and runner._consumer

        consumer = await eventually(polling_replaced)
        consumer.poll = never_returns  # the loop hangs in its next poll

        async def failing():
            response = await client.get("/healthz")
            dead = response.json().get("dead_loops_in", []) if response.status_code == 503 else []
            return response if any("logistics-consumer has not turned" in loop for loop in dead) else None

        response = await eventually(failing, timeout_s=20)
        # Only the hung loop: the other consumers, idle but polling, stay live.
        assert all(loop.startswith("logistics-consumer") for loop in response.json()["dead_loops_in"])
        assert (await client.get("/healthz")).json()["status"] == "failing"
