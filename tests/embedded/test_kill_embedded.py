"""kill -9 `vuonminh run` while webhooks arrive: every acknowledged order is stored and counted once.

The embedded mode promises Kafka's guarantees with a local log: a 202 means the order is on
disk, and the outbox/inbox keep every later effect exactly once across the restart.
"""

import asyncio
import signal
from collections import defaultdict
from datetime import datetime

import httpx
import pytest

from vuonminh.shared.timeutil import utc_now, vietnam_day
from vuonminh.wiring.demo import demo_catalog
from vuonminh.wiring.sender import SendReport, send_orders
from vuonminh.wiring.testing import TEST_SECRET, VuonminhProcess, eventually, operator_headers

pytestmark = pytest.mark.slow

ORDERS = 400


def _run(tmp_path, port=None, **env):
    return VuonminhProcess(
        ["run", "--demo", "--no-carrier-simulator", "--data-dir", str(tmp_path / "data")],
        env={"VUONMINH_DIRECT_SECRET": TEST_SECRET, **env},
        log_path=tmp_path / "run.log",
        port=port,
    ).start()


async def _all_orders(client: httpx.AsyncClient) -> list[dict]:
    found, offset = [], 0
    while True:
        page = (await client.get("/v1/orders", params={"limit": 500, "offset": offset})).json()
        found += page
        if len(page) < 500:
            return found
        offset += 500


async def _check_exactly_once(base_url: str, report: SendReport) -> None:
    acknowledged = set(report.accepted_order_ids)
    assert len(acknowledged) == ORDERS  # the sender retried through the restart, as shops do
    async with httpx.AsyncClient(headers=operator_headers(), base_url=base_url, timeout=30) as client:

        async def everything_stored():
            orders = await _all_orders(client)
            # every order decided by the saga's stock step: confirmed or rejected
            decided = all(o["status"] in ("confirmed", "rejected") for o in orders)
            return orders if len(orders) >= ORDERS and decided else None

        orders = await eventually(everything_stored, timeout_s=120, interval_s=0.5)
        by_shop_id = defaultdict(int)
        for order in orders:
            by_shop_id[order["order_id"]] += 1
        assert set(by_shop_id) == acknowledged and set(by_shop_id.values()) == {1}  # each exactly once
        placed = [o for o in orders if o["status"] == "confirmed"]
        # Demo orders only use known SKUs; the stock step of the saga may refuse some (the demo's stock is
        # finite): those leave the totals and are never shipped (logistics ships confirmed orders only).
        refused = [o for o in orders if o["status"] == "rejected"]
        assert len(placed) + len(refused) == ORDERS
        assert {r["code"] for o in refused for r in o["rejection_reasons"]} <= {"out_of_stock", "not_orderable"}

        # What the KPIs must say, recounted from the stored orders.
        expected = defaultdict(lambda: {"orders": set(), "gmv_vnd": 0, "grams": 0, "sellers": set()})
        shipments = set()
        for order in placed:
            for line in order["lines"]:
                commune = expected[line["seller_ward_code"]]
                commune["orders"].add(order["id"])
                commune["gmv_vnd"] += line["line_total_vnd"]
                commune["grams"] += line["line_weight_g"]
                commune["sellers"].add(line["seller_id"])
                shipments.add((order["id"], line["seller_id"]))
        first_day = min(vietnam_day(datetime.fromisoformat(o["placed_at"])) for o in placed)
        today = vietnam_day(utc_now())
        wards = {s["ward_code"] for s in demo_catalog()["sellers"]}

        async def kpis_settled():
            result = {}
            for ward in wards:
                result[ward] = (
                    await client.get(
                        f"/v1/kpis/communes/{ward}", params={"from": first_day.isoformat(), "to": today.isoformat()}
                    )
                ).json()
            settled = sum(k["shipments"] for k in result.values()) >= len(shipments) and all(
                result[ward]["orders"] == len(expected[ward]["orders"]) for ward in wards
            )  # refusals from the stock step may land after the shipments
            return result if settled else None

        kpis = await eventually(kpis_settled, timeout_s=120, interval_s=0.5)
        await asyncio.sleep(1)
        for ward in wards:
            want, got = expected[ward], kpis[ward]
            assert got["orders"] == len(want["orders"]), ward
            assert got["gmv_vnd"] == want["gmv_vnd"], ward
            assert got["kg_sold"] == round(want["grams"] / 1000, 3), ward
            assert got["active_sellers"] == len(want["sellers"]), ward
        assert sum(k["shipments"] for k in kpis.values()) == len(shipments)


def _send_in_background(target: VuonminhProcess, *, run_id: str) -> tuple[SendReport, asyncio.Task]:
    """Shops sending orders, retrying through the restart; the report fills as they go."""
    report = SendReport()
    sending = send_orders(
        base_url=target.url,
        secret=TEST_SECRET,
        count=ORDERS,
        concurrency=8,
        run_id=run_id,
        retries=60,
        progress=False,
        report=report,
    )
    return report, asyncio.create_task(sending)


async def test_kill_9_while_webhooks_arrive_loses_and_duplicates_nothing(tmp_path):
    first = _run(tmp_path)
    await first.wait_ready()
    report, sending = _send_in_background(first, run_id="kill")
    await eventually(lambda: asyncio.sleep(0, len(report.accepted_order_ids) >= ORDERS // 3), timeout_s=60)

    first.kill()  # mid-stream: requests in flight, consumers mid-batch, relays mid-send

    assert first.process.returncode == -signal.SIGKILL
    accepted_before_kill = len(report.accepted_order_ids)
    second = _run(tmp_path, port=first.port)
    await second.wait_ready()
    await sending
    assert accepted_before_kill < ORDERS
    await _check_exactly_once(second.url, report)
    assert second.stop() == -signal.SIGTERM
    assert "Application shutdown complete" in second.log_tail()  # SIGTERM drains, then exits


async def test_crash_between_effect_and_offset_commit_in_embedded_mode(tmp_path):
    first = _run(tmp_path, VUONMINH_CRASH_POINT="vuonminh.analytics:orders.orders:after-effect-before-commit@3")
    await first.wait_ready()
    report, sending = _send_in_background(first, run_id="crash")

    assert await first.wait_exit(timeout_s=60) == -signal.SIGKILL
    second = _run(tmp_path, port=first.port)
    await second.wait_ready()
    await sending
    await _check_exactly_once(second.url, report)
    duplicates = await second.metric("vuonminh_events_consumed_total", group="vuonminh.analytics", outcome="duplicate")
    assert duplicates >= 1  # the batch applied before the crash came again and was recognised
    assert second.stop() == -signal.SIGTERM
    assert "Application shutdown complete" in second.log_tail()  # SIGTERM drains, then exits
