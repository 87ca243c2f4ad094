"""On Kafka and PostgreSQL: `vuonminh analytics rebuild --kafka --swap` replays the topics into a fresh
schema whose numbers equal the live ones, and makes it the live schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from vuonminh.analytics.tests.conftest import BINH_LU, EVERY_KPI, WEEK, build_history
from vuonminh.shared.events import ALL_TOPICS
from vuonminh.shared.transport.kafka import KafkaTransport
from vuonminh.wiring.testing import eventually, fetch_rows

pytestmark = pytest.mark.integration


async def every_kpi(process) -> list[dict]:
    answers = []
    async with httpx.AsyncClient(base_url=process.url, headers=process.headers, timeout=30) as client:
        for path, params in EVERY_KPI:
            response = await client.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            answers.append(response.json())
    return answers


async def test_rebuild_on_kafka_equals_live_and_swaps_in(start_service, service_env, database_url):
    analytics = await start_service("analytics")
    await analytics.wait_ready()
    transport = KafkaTransport(
        service_env["KAFKA_BOOTSTRAP_SERVERS"], namespace=service_env["VUONMINH_KAFKA_NAMESPACE"]
    )
    await transport.ensure_topics(ALL_TOPICS)
    producer = transport.producer(client_id="test-history")
    await producer.start()
    history = build_history()
    try:
        await producer.send([envelope.to_record() for envelope in history.envelopes])
    finally:
        await producer.stop()

    async def settled():
        async with httpx.AsyncClient(base_url=analytics.url, headers=analytics.headers) as client:
            kpis = (await client.get(f"/v1/kpis/communes/{BINH_LU}", params=WEEK)).json()
            live = (await client.get("/v1/kpis/livestreams/live-1")).json()
        return kpis.get("orders") == 183 and live.get("orders") == 21 and kpis.get("returned_orders") == 1

    await eventually(settled, timeout_s=90, interval_s=0.5)
    live = await every_kpi(analytics)
    analytics.stop()  # the workers stop before a swap

    command = [sys.executable, "-m", "vuonminh.wiring.cli", "analytics", "rebuild", "--kafka", "--swap"]
    done = await asyncio.to_thread(
        subprocess.run, command, env={**analytics.env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"Rebuilt analytics from {len(history.envelopes)} events" in done.stderr

    schemas = {row[0] for row in await fetch_rows(database_url, "SELECT schema_name FROM information_schema.schemata")}
    assert any(name.startswith("analytics_before_") for name in schemas)
    assert "analytics_rebuild" not in schemas

    again = await start_service("analytics")
    await again.wait_ready()
    rebuilt = await every_kpi(again)
    for (path, _params), before, after in zip(EVERY_KPI, live, rebuilt, strict=True):
        assert after == before, path
