"""Retention: the janitor keeps the local log, the outboxes and the inboxes from growing for ever."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.retention import Janitor, disk_usage, table_bytes, unconsumed
from vuonminh.shared.settings import Settings
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

ROUNDS = 5
ORDERS_PER_ROUND = 25
# Page-level jitter of SQLite's b-trees (a split lands in one round or the next). Without retention the log
# grows by about 10 KiB per order, 250 KiB per round here, so a few pages cannot hide growth.
SLACK_BYTES = 4 * 4096
NO_WINDOW = {"janitor_interval_s": 3600.0, "outbox_retention_days": 0.0, "dedupe_window_days": 0.0}


async def _send_round(client, round_no: int) -> None:
    for n in range(ORDERS_PER_ROUND):
        raw = encode(order_body(f"R{round_no}-{n:03d}"))
        assert (await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))).status_code == 202


async def _drained(platform) -> None:
    async def nothing_left() -> bool:
        return await unconsumed(platform) == 0

    await eventually(nothing_left, timeout_s=60, interval_s=0.1)


def _retained_bytes(path) -> int:
    tables = table_bytes(path)
    return tables.get("outbox", 0) + tables.get("processed_events", 0)


async def test_disk_use_stays_flat_over_rounds_of_orders(tmp_path):
    log_on_disk, retained = [], []
    async with embedded_client(tmp_path, **NO_WINDOW) as (client, platform):
        await seed_catalog(client, platform)
        for round_no in range(ROUNDS):
            await _send_round(client, round_no)
            await _drained(platform)
            report = await platform.janitor.prune_once()
            assert report.log_records and report.outbox_rows["orders"] and report.processed_events_rows["analytics"]
            log_on_disk.append(disk_usage(tmp_path)["log.sqlite3"])
            retained.append({s: _retained_bytes(tmp_path / f"{s}.sqlite3") for s in platform.runtimes})

        orders = (await client.get("/v1/orders", params={"limit": 500})).json()
        topics = await platform.transport.log.topics()

    # Every order went through, although the log now holds only the newest record of each topic.
    assert len(orders) == ROUNDS * ORDERS_PER_ROUND and {o["status"] for o in orders} <= {"placed", "confirmed"}
    assert topics["orders.intake"][1] + 1 == ROUNDS * ORDERS_PER_ROUND
    # access.audit has no reader in the platform: it keeps its records for the topic retention.
    assert topics.pop("access.audit") == (0, 4)  # the two sellers and three products seeded
    assert all(first == last for first, last in topics.values())
    # After the first rounds have sized the files, later rounds reuse the freed pages.
    assert max(log_on_disk[2:]) <= log_on_disk[1] + SLACK_BYTES, log_on_disk
    for service in platform.runtimes:
        sizes = [r[service] for r in retained]
        assert max(sizes[2:]) <= sizes[1] + SLACK_BYTES, (service, sizes)


async def test_a_group_that_has_not_committed_yet_holds_every_record(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3")
    await transport.ensure_topics(["t"])
    await transport.producer(client_id="p").send(
        [OutgoingRecord(topic="t", key=b"k", value=bytes([n]), headers=()) for n in range(10)]
    )
    janitor = Janitor(services=[], settings=Settings(), local_log=transport.log, readers={"t": {"fast", "new"}})
    await transport.log.commit("fast", {("t", 0): 10})

    await janitor.prune_once()
    assert await transport.log.topics() == {"t": (0, 9)}  # "new" has not committed: nothing goes

    await transport.log.commit("new", {("t", 0): 4})
    await transport.log.commit("replayer", {("t", 0): 6})  # a group outside this process counts too
    await janitor.prune_once()
    assert await transport.log.topics() == {"t": (4, 9)}

    await transport.log.commit("new", {("t", 0): 10})
    await janitor.prune_once()
    assert await transport.log.topics() == {"t": (6, 9)}
    await transport.close()


async def test_dead_letter_records_are_kept_for_the_dlq_retention(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3")
    await transport.ensure_topics(["t.dlq"])
    await transport.producer(client_id="p").send(
        [OutgoingRecord(topic="t.dlq", key=b"k", value=bytes([n]), headers=()) for n in range(4)]
    )
    janitor = Janitor(services=[], settings=Settings(dlq_retention_days=30), local_log=transport.log)

    await janitor.prune_once()
    assert await transport.log.topics() == {"t.dlq": (0, 3)}  # nobody reads it, yet it is not "consumed"

    old_ms = int((utc_now() - timedelta(days=31)).timestamp() * 1000)
    await asyncio.get_running_loop().run_in_executor(
        None,
        lambda: _sql(tmp_path / "log.sqlite3", 'UPDATE records SET timestamp_ms = ? WHERE "offset" < 2', old_ms),
    )
    await janitor.prune_once()
    assert await transport.log.topics() == {"t.dlq": (2, 3)}
    await transport.close()


async def test_a_topic_nobody_here_reads_is_kept_for_the_topic_retention(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3")
    await transport.ensure_topics(["access.audit"])
    await transport.producer(client_id="p").send(
        [OutgoingRecord(topic="access.audit", key=b"k", value=bytes([n]), headers=()) for n in range(4)]
    )
    janitor = Janitor(services=[], settings=Settings(topic_retention_days=7), local_log=transport.log)
    await janitor.prune_once()
    assert await transport.log.topics() == {"access.audit": (0, 3)}

    old_ms = int((utc_now() - timedelta(days=8)).timestamp() * 1000)
    await asyncio.get_running_loop().run_in_executor(
        None,
        lambda: _sql(tmp_path / "log.sqlite3", 'UPDATE records SET timestamp_ms = ? WHERE "offset" < 3', old_ms),
    )
    await janitor.prune_once()
    assert await transport.log.topics() == {"access.audit": (3, 3)}
    await transport.close()


def _sql(path, statement: str, *args) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, args)
    conn.close()


async def test_outbox_and_dedupe_rows_are_kept_within_their_windows(tmp_path):
    windows = {"janitor_interval_s": 3600.0, "outbox_retention_days": 2.0, "dedupe_window_days": 45.0}
    async with embedded_client(tmp_path, **windows) as (client, platform):
        await seed_catalog(client, platform)
        await _send_round(client, 0)
        await _drained(platform)
        orders = platform.service("orders")

        async def count(table) -> int:
            async with orders.engine.connect() as conn:
                return await conn.scalar(select(func.count()).select_from(table))

        async def age(table, column, days: float) -> None:
            async with orders.engine.begin() as conn:
                await conn.execute(update(table).values({column: utc_now() - timedelta(days=days)}))

        outbox, processed = orders.spec.outbox, orders.spec.processed_events
        before = (await count(outbox), await count(processed))
        await platform.janitor.prune_once()
        assert (await count(outbox), await count(processed)) == before  # all younger than their windows

        await age(outbox, "published_at", 1.9)
        await age(processed, "processed_at", 44.9)
        await platform.janitor.prune_once()
        assert (await count(outbox), await count(processed)) == before

        await age(outbox, "published_at", 2.1)
        await age(processed, "processed_at", 45.1)
        report = await platform.janitor.prune_once()
        assert (await count(outbox), await count(processed)) == (0, 0)
        assert report.outbox_rows["orders"] == before[0] and report.processed_events_rows["orders"] == before[1]


async def test_the_janitor_runs_by_itself_and_reports_in_metrics(tmp_path):
    settings = {"janitor_interval_s": 0.2, "outbox_retention_days": 0.0, "dedupe_window_days": 0.0}
    async with embedded_client(tmp_path, **settings) as (client, platform):
        await seed_catalog(client, platform)
        await _send_round(client, 0)

        async def pruned_log() -> str | None:
            text = (await client.get("/metrics")).text
            return text if 'vuonminh_retention_deleted_total{owner="orders.intake",store="local_log"}' in text else None

        text = await eventually(pruned_log, timeout_s=30)
        assert 'vuonminh_retention_deleted_total{owner="orders",store="outbox"}' in text
        assert "vuonminh_local_log_bytes " in text
