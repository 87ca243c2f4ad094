"""A full local log on the embedded platform: intake answers 503 with Retry-After and says the log
is full (the real SQLite error in the log line, not a failed ROLLBACK), nothing it had accepted is
lost, and intake takes orders again once retention has freed space."""

from structlog.testing import capture_logs

from vuonminh.shared.dlq import DeadLetters, LocalDeadLetterLog
from vuonminh.shared.retention import unconsumed
from vuonminh.shared.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

LOG_CAP_MB = 0.2


async def test_a_full_log_refuses_intake_clearly_loses_nothing_and_recovers(tmp_path):
    settings = {"local_log_max_mb": LOG_CAP_MB, "janitor_interval_s": 3600.0}
    async with embedded_client(tmp_path, **settings) as (client, platform):
        await seed_catalog(client, platform)

        async def post(order_id: str):
            raw = encode(order_body(order_id))
            return await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))

        accepted: list[str] = []
        for n in range(2000):
            with capture_logs() as logs:
                reply = await post(f"FULL-{n:04d}")
            if reply.status_code != 202:
                break
            accepted.append(f"FULL-{n:04d}")
        else:
            raise AssertionError(f"the log never filled up under a {LOG_CAP_MB} MB cap")

        assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
        assert reply.json() == {"detail": "order log full, retry later"}
        (refusal,) = [entry for entry in logs if entry["event"] == "orders.intake_unavailable"]
        assert "LogFull" in refusal["error"] and "database or disk is full" in refusal["error"]
        assert "cannot rollback" not in refusal["error"]
        assert len(accepted) > 20  # the cap, not something else, stopped intake

        # Retention frees what every group has read; the pipeline drains, intake comes back.
        async def pruned_and_drained() -> bool:
            await platform.janitor.prune_once()
            return await unconsumed(platform) == 0

        await eventually(pruned_and_drained, timeout_s=120, interval_s=0.2)
        await platform.janitor.prune_once()
        again = await post("FULL-AFTER")
        assert again.status_code == 202, again.text

        async def all_shipped() -> list | None:
            await platform.janitor.prune_once()
            orders = (await client.get("/v1/orders", params={"limit": 500})).json()
            return orders if len(orders) == len(accepted) + 1 else None

        orders = await eventually(all_shipped, timeout_s=60, interval_s=0.2)
        # Every order acknowledged before the log filled is there, once, and went on to logistics.
        assert sorted(o["order_id"] for o in orders) == sorted([*accepted, "FULL-AFTER"])
        assert {o["status"] for o in orders} == {"placed"}
        for order in orders[:5]:
            assert len((await client.get("/v1/shipments", params={"order_id": order["id"]})).json()) == 1
        box = DeadLetters(LocalDeadLetterLog(tmp_path / "log.sqlite3"))
        await box.log.open()
        assert await box.load() == []  # a full log is an outage: nothing was dead-lettered for it
        await box.log.close()
