"""A full local log on the embedded platform: intake answers 503 with Retry-After and says the log
is full (the real SQLite error in the log line, not a failed ROLLBACK), nothing it had accepted is
lost, and intake takes orders again once retention has freed space.

The log fills the way it does in production: a consumer group stops committing (here one that
reads a topic of bulky records), retention may not delete what it has not read, and orders keep
coming. When it catches up, retention frees the space."""

import asyncio

from sqlmodel import func, select
from structlog.testing import capture_logs

from vuonminh.logistics.models import Shipment
from vuonminh.orders.models import Order
from vuonminh.shared.dlq import DeadLetters, LocalDeadLetterLog
from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.retention import unconsumed
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

# Far above one relay batch (200 rows): a log smaller than what one relay send needs could
# never take that send, however much retention frees.
LOG_CAP_MB = 1
WAVE = 16


async def test_a_full_log_refuses_intake_clearly_loses_nothing_and_recovers(tmp_path):
    # Topics nobody here reads (the carriers' dispatch requests, the audit trail) are kept for the topic
    # retention, as Kafka keeps them: here a few seconds, or under a 1 MB cap they would hold the log full.
    settings = {"local_log_max_mb": LOG_CAP_MB, "janitor_interval_s": 3600.0, "topic_retention_days": 3 / 86400}
    async with embedded_client(tmp_path, **settings) as (client, platform):
        await seed_catalog(client, platform)
        log = platform.transport.log
        bulky = [OutgoingRecord(topic="bulk", key=b"b", value=bytes(16 * 1024), headers=()) for _ in range(48)]
        await log.append(bulky)
        await log.commit("stuck-reader", {("bulk", 0): 0})  # read nothing yet: holds all of it

        async def post(order_id: str):
            raw = encode(order_body(order_id))
            return await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))

        accepted: list[str] = []
        refused = []
        for wave in range(200):  # concurrent waves, like a livestream, until the log refuses
            ids = [f"FULL-{wave:03d}-{n:02d}" for n in range(WAVE)]
            with capture_logs() as logs:
                replies = await asyncio.gather(*(post(order_id) for order_id in ids))
            accepted += [order_id for order_id, r in zip(ids, replies, strict=True) if r.status_code == 202]
            refused = [r for r in replies if r.status_code != 202]
            if refused:
                break
        else:
            raise AssertionError(f"the log never filled up under a {LOG_CAP_MB} MB cap")

        reply = refused[0]
        assert {r.status_code for r in refused} == {503} and reply.headers["Retry-After"] == "5"
        assert reply.json() == {"detail": "order log full, retry later"}
        refusal = next(entry for entry in logs if entry["event"] == "orders.intake_unavailable")
        assert "LogFull" in refusal["error"] and "database or disk is full" in refusal["error"]
        assert "cannot rollback" not in refusal["error"]
        assert len(accepted) > 20  # the cap, not something else, stopped intake

        # The stuck group catches up; retention frees what every group has read; the pipeline
        # drains and intake comes back.
        await log.commit("stuck-reader", {("bulk", 0): len(bulky)})

        async def pruned_and_drained() -> bool:
            await platform.janitor.prune_once()
            return await unconsumed(platform) == 0

        await eventually(pruned_and_drained, timeout_s=120, interval_s=0.2)
        await platform.janitor.prune_once()
        again = await post("FULL-AFTER")
        assert again.status_code == 202, again.text

        async def all_shipped() -> bool:
            await platform.janitor.prune_once()
            return (
                await unconsumed(platform) == 0 and await _count(platform, "logistics", Shipment) == len(accepted) + 1
            )

        await eventually(all_shipped, timeout_s=60, interval_s=0.2)
        # Every order acknowledged before the log filled is there, once, and went on to logistics.
        async with platform.service("orders").sessions() as session:
            stored = (await session.exec(select(Order.external_order_id, Order.status))).all()
        assert sorted(order_id for order_id, _ in stored) == sorted([*accepted, "FULL-AFTER"])
        assert {status for _, status in stored} <= {"placed", "confirmed"}  # confirmed once stock is reserved
        box = DeadLetters(LocalDeadLetterLog(tmp_path / "log.sqlite3"))
        await box.log.open()
        assert await box.load() == []  # a full log is an outage: nothing was dead-lettered for it
        await box.log.close()


async def _count(platform, service: str, model) -> int:
    async with platform.service(service).sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))
