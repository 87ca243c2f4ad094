"""`vuonminh dlq` on the embedded platform: a record a handler cannot store is parked, listed,
shown, and replayed after the fix; the groups that had applied it skip the replay."""

import asyncio
import json
import os
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from vuonminh.analytics.models import SellerOrderFact
from vuonminh.shared.dlq import (
    DeadLetterError,
    DeadLetterFilter,
    DeadLetters,
    LocalDeadLetterLog,
    parse_group,
    parse_ref,
    parse_time,
    parse_topic,
)
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

ORDER_PLACED = "vuonminh.orders.order_placed.v1"
# A fault an operator can mend: analytics' table refuses big sales until the trigger is dropped.
BLOCK_BIG_SALES = """
CREATE TRIGGER block_big_sales BEFORE INSERT ON seller_order_facts WHEN NEW.gmv_vnd >= 1000000
BEGIN SELECT RAISE(ABORT, 'big sales blocked by a faulty constraint'); END
"""


async def vuonminh(*args: str) -> tuple[int, str, str]:
    """The real command line, as an operator runs it beside the running platform."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "VUONMINH_KAFKA_NAMESPACE")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vuonminh.wiring.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


def _sample(metrics: str, prefix: str) -> float:
    return sum(float(line.removeprefix(prefix)) for line in metrics.splitlines() if line.startswith(prefix))


def _consumed(metrics: str, group: str, outcome: str) -> float:
    return _sample(
        metrics, f'vuonminh_events_consumed_total{{event_type="{ORDER_PLACED}",group="{group}",outcome="{outcome}"}} '
    )


def _dead_lettered(metrics: str) -> float:
    return _sample(metrics, 'vuonminh_dead_lettered_total{group="vuonminh.analytics",topic="orders.orders"} ')


async def test_a_parked_record_is_listed_shown_and_replayed_once_fixed(tmp_path):
    async with embedded_client(tmp_path, max_handler_attempts=2) as (client, platform):
        await seed_catalog(client, platform)
        # Counters are per Python process, which other tests share: compare with a baseline.
        baseline = (await client.get("/metrics")).text

        def counted(metrics: str, group: str, outcome: str) -> float:
            return _consumed(metrics, group, outcome) - _consumed(baseline, group, outcome)

        analytics = platform.service("analytics")
        async with analytics.engine.begin() as conn:
            await conn.exec_driver_sql(BLOCK_BIG_SALES)
        big = encode(order_body("BIG-1", items=[{"sku": "MIEN-DONG-500", "quantity": 20, "unit_price_vnd": 65000}]))
        small = encode(order_body("SMALL-1"))
        for raw in (big, small):
            assert (
                await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
            ).status_code == 202
        box = DeadLetters(LocalDeadLetterLog(tmp_path / "log.sqlite3"))
        await box.log.open()

        parked = await eventually(box.load, timeout_s=30)

        assert len(parked) == 1
        dead_letter = parked[0]
        assert (dead_letter.dlq_topic, dead_letter.original_topic) == ("orders.orders.dlq", "orders.orders")
        assert dead_letter.group == "vuonminh.analytics" and dead_letter.event_type == ORDER_PLACED
        assert "big sales blocked" in dead_letter.error
        metrics = (await client.get("/metrics")).text
        assert _dead_lettered(metrics) - _dead_lettered(baseline) == 1

        async def logistics_shipped_both() -> bool:
            return counted((await client.get("/metrics")).text, "vuonminh.logistics", "applied") == 2

        await eventually(logistics_shipped_both, timeout_s=30)

        # list: filters by topic, group, time and event id
        code, out, err = await vuonminh("dlq", "list", "--data-dir", str(tmp_path), "--json")
        assert code == 0, err
        listed = [json.loads(line) for line in out.splitlines()]
        assert [d["ref"] for d in listed] == [dead_letter.ref] and listed[0]["replayed_at"] == []
        assert "the local log" in err
        code, out, _ = await vuonminh(
            "dlq", "list", "--data-dir", str(tmp_path), "--group", "analytics", "--since", "1h"
        )
        assert code == 0 and dead_letter.ref in out and "parked" in out
        later = parse_time("0s")
        for matching, selector in (
            (True, DeadLetterFilter(topics=("orders.orders",), group="vuonminh.analytics")),
            (True, DeadLetterFilter(event_id=dead_letter.event_id, since=parse_time("1h"), until=later)),
            (False, DeadLetterFilter(group="vuonminh.logistics")),
            (False, DeadLetterFilter(topics=("logistics.shipments",))),
            (False, DeadLetterFilter(event_id="another")),
            (False, DeadLetterFilter(since=later)),
            (False, DeadLetterFilter(until=parse_time("1h"))),
        ):
            assert selector.matches(dead_letter) is matching, selector

        # show: the error, the headers and the payload
        code, out, err = await vuonminh("dlq", "show", "--data-dir", str(tmp_path), dead_letter.ref)
        assert code == 0, err
        assert (
            "big sales blocked" in out
            and f"ce_id: {dead_letter.event_id}" in out
            and '"external_order_id": "BIG-1"' in out
        )

        # the operator mends the table, then replays
        async with analytics.engine.begin() as conn:
            await conn.exec_driver_sql("DROP TRIGGER block_big_sales")
        code, out, err = await vuonminh("dlq", "replay", "--data-dir", str(tmp_path), "--group", "analytics")
        assert code == 0, err
        assert f"replayed {dead_letter.ref} -> orders.orders" in out and "1 replayed (orders.orders: 1)" in out

        async def facts() -> int:
            async with analytics.sessions() as session:
                return await session.scalar(select(func.count()).select_from(SellerOrderFact))

        assert await eventually(lambda: _equals(facts, 2), timeout_s=30)

        async def logistics_skipped_it() -> bool:
            return counted((await client.get("/metrics")).text, "vuonminh.logistics", "duplicate") == 1

        await eventually(logistics_skipped_it, timeout_s=30)  # its inbox knew the event id
        shipments = (await client.get("/v1/shipments", params={"order_id": _order_id(dead_letter)})).json()
        assert len(shipments) == 1

        # A second replay of the same record is reported and sends nothing; --force sends it.
        code, out, _ = await vuonminh("dlq", "replay", "--data-dir", str(tmp_path), dead_letter.ref)
        assert code == 0 and f"skipped {dead_letter.ref}: already replayed" in out and "0 replayed" in out
        code, out, _ = await vuonminh("dlq", "list", "--data-dir", str(tmp_path))
        assert "replayed 20" in out  # the status column shows when
        code, out, _ = await vuonminh("dlq", "replay", "--data-dir", str(tmp_path), dead_letter.ref, "--force")
        assert code == 0 and "1 replayed" in out

        async def both_skipped_the_forced_replay() -> bool:
            metrics = (await client.get("/metrics")).text
            return (
                counted(metrics, "vuonminh.logistics", "duplicate") == 2
                and counted(metrics, "vuonminh.analytics", "duplicate") == 1
            )

        await eventually(both_skipped_the_forced_replay, timeout_s=30)
        assert await facts() == 2
        assert len(await box.load()) == 1  # markers are not dead letters
        await box.log.close()


async def _equals(probe, expected) -> bool:
    return await probe() == expected


def _order_id(dead_letter) -> str:
    return json.loads(dead_letter.value)["order_id"]


async def test_replay_asks_for_a_selection_and_names_bad_input(tmp_path):
    async with embedded_client(tmp_path) as (_client, _platform):
        code, _, err = await vuonminh("dlq", "replay", "--data-dir", str(tmp_path))
        assert code == 1 and "name records" in err and "--all" in err
        code, _, err = await vuonminh("dlq", "replay", "--data-dir", str(tmp_path), "orders.orders.dlq:0:7")
        assert code == 1 and "no dead letter orders.orders.dlq:0:7" in err
    code, _, err = await vuonminh("dlq", "list", "--data-dir", str(tmp_path / "elsewhere"), "--topic", "orders.orders")
    assert code == 1 and "there is no local log" in err


def test_selectors_parse_or_say_what_is_expected():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_time("2h", now=now) == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert parse_time("7d", now=now) == datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    assert parse_time("2026-11-20T09:00:00+07:00") == datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    with pytest.raises(DeadLetterError, match="no UTC offset"):
        parse_time("2026-11-20T09:00:00")
    with pytest.raises(DeadLetterError, match="neither a time"):
        parse_time("yesterday")
    assert parse_ref("orders.orders.dlq:2:15") == ("orders.orders.dlq", 2, 15)
    with pytest.raises(DeadLetterError, match="<topic>.dlq:<partition>:<offset>"):
        parse_ref("orders.orders:2:15")
    assert parse_group("logistics") == "vuonminh.logistics" and parse_group("my.group") == "my.group"
    assert parse_topic("orders.orders.dlq") == "orders.orders"
    with pytest.raises(DeadLetterError, match="unknown topic 'orders.order'; the topics are catalog.sellers"):
        parse_topic("orders.order")


async def test_the_trigger_used_above_really_refuses_big_sales(tmp_path):
    # Guards the test above: its fault must be a refusal of the record, not an outage.
    async with embedded_client(tmp_path) as (_client, platform):
        engine = platform.service("analytics").engine
        async with engine.begin() as conn:
            await conn.exec_driver_sql(BLOCK_BIG_SALES)
        with pytest.raises(Exception, match="big sales blocked") as refused:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO seller_order_facts (order_id, seller_id, ward_code, province_code, day, "
                        "placed_at, gmv_vnd, weight_g) VALUES ('o', 's', '03390', '12', '2026-11-20', "
                        "'2026-11-20 00:00:00', 1000000, 1)"
                    )
                )
        assert type(refused.value).__name__ == "IntegrityError"
