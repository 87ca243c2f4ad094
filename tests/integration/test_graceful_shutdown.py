"""SIGTERM, as Kubernetes stops a pod during a rollout, while orders keep arriving.

Kubernetes sends SIGTERM, waits terminationGracePeriodSeconds (45 s in deploy/k8s), then SIGKILLs.
In that time a process stops taking requests, answers the ones in flight, lets its consumer
apply the batch in hand and commit its offsets, and sends what its outbox holds. Then:
- nothing is lost: every acknowledged order is stored, shipped and counted (exactly once);
- nothing is processed twice: the restarted worker is handed no record its predecessor had
  applied (its inbox sees no duplicate), and no event reaches the log twice (each relay sent
  what it had and marked it before leaving).
Orders runs as an API process and a worker process, as in deploy/k8s.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from vuonminh.wiring.testing import ShopSender, VuonminhProcess, log_evidence

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TWO_SELLERS = [
    {"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000},
    {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000},
]
# deploy/k8s/base gives every pod this long between SIGTERM and SIGKILL.
GRACE_PERIOD_S = 45


async def _event_ids_on(bootstrap: str, topic: str) -> list[str]:
    """The ce_id of every record on a topic, read from the start to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ids: list[str] = []
        deadline = time.monotonic() + 60
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            assert time.monotonic() < deadline, f"{topic} not read to its end within 60 s"
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                ids += [dict(m.headers)["ce_id"].decode() for m in messages]
        return ids
    finally:
        await consumer.stop()


async def _terminate(process: VuonminhProcess) -> tuple[int, float]:
    """SIGTERM; returns the exit code and how long the process took to exit."""
    sent_at = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    code = await process.wait_exit(timeout_s=GRACE_PERIOD_S + 15)
    return code, time.monotonic() - sent_at


async def test_sigterm_under_load_loses_nothing_and_processes_nothing_twice(
    service_env, tmp_path, start_service, seed_catalog_via, exactly_once_problems, kafka_bootstrap
):
    started: list[VuonminhProcess] = []

    def orders_part(role: str, suffix: str, port: int | None = None) -> VuonminhProcess:
        process = VuonminhProcess(
            ["serve", "orders", "--role", role],
            env=service_env,
            log_path=tmp_path / f"orders-{role}-{suffix}.log",
            port=port,
        ).start()
        started.append(process)
        return process

    try:
        catalog = await start_service("catalog")
        analytics = await start_service("analytics")
        logistics = await start_service("logistics")
        orders_api = orders_part("api", "1")
        orders_worker = orders_part("worker", "1")
        for process in (catalog, analytics, logistics, orders_api, orders_worker):
            await process.wait_ready()
        await seed_catalog_via(catalog)

        processes = {"orders-worker": orders_worker, "logistics": logistics, "orders-api": orders_api}
        async with ShopSender(orders_api.url, prefix="SIGTERM", items=TWO_SELLERS, workers=4, pace_s=0.02) as shop:
            await shop.wait_acknowledged(40)
            # The worker under load: records are arriving on its topic while it stops.
            worker_code, worker_s = await _terminate(orders_worker)
            await shop.wait_acknowledged(len(shop.acknowledged) + 20)
            logistics_code, logistics_s = await _terminate(logistics)
            orders_worker = orders_part("worker", "2")
            logistics = await start_service("logistics")
            processes.update({"orders-worker-2": orders_worker, "logistics-2": logistics})
            await shop.wait_acknowledged(len(shop.acknowledged) + 20)
            # The API with webhooks in flight: it answers them, refuses new connections, exits.
            api_code, api_s = await _terminate(orders_api)
            orders_api = orders_part("api", "2", port=orders_api.port)
            processes["orders-api-2"] = orders_api
            await orders_api.wait_ready()
            await shop.wait_acknowledged(len(shop.acknowledged) + 20)
            await shop.finish()

        evidence = log_evidence(processes, "platform.drained", "kafka.commit_failed", "retry.waiting")
        for name, code, took in (
            ("orders worker", worker_code, worker_s),
            ("logistics", logistics_code, logistics_s),
            ("orders api", api_code, api_s),
        ):
            # uvicorn re-raises the signal after a graceful shutdown; a SIGKILL would be -9.
            assert code == -signal.SIGTERM, f"{name} exited with {code}\n{evidence}"
            assert took < GRACE_PERIOD_S, f"{name} took {took:.1f} s to stop\n{evidence}"
        for name in ("orders-worker", "logistics"):
            drained = processes[name].log_lines("platform.drained")
            assert drained and "cancelled at the deadline" not in drained[-1], f"{name}: {drained}\n{evidence}"
            assert "finished" in drained[-1], f"{name}: {drained}"

        problems = await exactly_once_problems(shop.acknowledged)
        assert not problems, "\n".join(problems) + "\n" + evidence

        # Nothing twice: the successors were handed nothing their predecessors had applied...
        for process, group in ((orders_worker, "vuonminh.orders"), (logistics, "vuonminh.logistics")):
            applied = await process.metric("vuonminh_events_consumed_total", group=group, outcome="applied")
            duplicates = await process.metric("vuonminh_events_consumed_total", group=group, outcome="duplicate")
            assert applied > 0, f"{group}: the restarted worker applied nothing, the test proves nothing"
            assert duplicates == 0, f"{group}: {duplicates} records delivered again after a graceful stop"
        # ...and no relay sent an event twice.
        namespace = service_env["VUONMINH_KAFKA_NAMESPACE"]
        for topic in ("orders.orders", "logistics.shipments"):
            ids = await _event_ids_on(kafka_bootstrap, namespace + topic)
            twice = {event_id: n for event_id, n in Counter(ids).items() if n > 1}
            assert ids and not twice, f"{topic}: {len(twice)} events sent more than once: {list(twice)[:5]}"
    finally:
        for process in started:
            process.stop()
        await asyncio.sleep(0)
