"""`vuonminh analytics rebuild` replays the log into fresh projections that equal the live ones."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from vuonminh.analytics.tests.conftest import BINH_LU, all_consumed, analytics_alone, publish
from vuonminh.wiring.testing import eventually

WEEK = {"from": "2026-11-14", "to": "2026-11-20"}
EVERY_KPI = [
    (f"/v1/kpis/communes/{BINH_LU}", WEEK),
    (f"/v1/kpis/communes/{BINH_LU}", {"from": "2026-11-01", "to": "2026-11-30", "granularity": "week"}),
    (f"/v1/kpis/communes/{BINH_LU}/core-sellers", {"on": "2026-11-20"}),
    (f"/v1/kpis/communes/{BINH_LU}/ocop-share", {"on": "2026-11-20"}),
    (f"/v1/kpis/communes/{BINH_LU}/top-products", WEEK),
    (f"/v1/kpis/communes/{BINH_LU}/channels", WEEK),
    (f"/v1/kpis/communes/{BINH_LU}/fulfilment", WEEK),
    ("/v1/kpis/provinces/12", {**WEEK, "granularity": "month"}),
    ("/v1/kpis/sellers/s-hong", WEEK),
    ("/v1/kpis/products/MIEN-500", WEEK),
    ("/v1/kpis/livestreams/live-1", {}),
]


async def every_kpi(client) -> list[dict]:
    answers = []
    for path, params in EVERY_KPI:
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        answers.append(response.json())
    return answers


async def test_rebuilt_numbers_equal_the_live_ones(tmp_path, history):
    async with analytics_alone(tmp_path) as (client, platform):
        await publish(platform, history.envelopes)
        await eventually(lambda: all_consumed(platform.transport), timeout_s=60)
        target = {"core_sellers_target": 10, "due_on": "2026-12-31"}  # entered, not projected: kept
        assert (await client.put(f"/v1/kpis/communes/{BINH_LU}/core-seller-target", json=target)).status_code == 204
        live = await every_kpi(client)
    assert live[0]["orders"] > 0 and live[2]["target"] == 10

    def run_rebuild() -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "vuonminh.wiring.cli", "analytics", "rebuild", "--data-dir", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    done = await asyncio.to_thread(run_rebuild)
    assert done.returncode == 0, done.stderr
    assert f"Rebuilt analytics from {len(history.envelopes)} events" in done.stderr
    assert "rebuild analytics: 100%" in done.stderr  # the progress bar reached the end of the log

    async with analytics_alone(tmp_path) as (client, _platform):
        rebuilt = await every_kpi(client)
    for (path, _params), before, after in zip(EVERY_KPI, live, rebuilt, strict=True):
        assert after == before, path


async def test_rebuild_refuses_while_the_platform_runs(tmp_path):
    async with analytics_alone(tmp_path):
        command = [sys.executable, "-m", "vuonminh.wiring.cli", "analytics", "rebuild", "--data-dir", str(tmp_path)]
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "stop `vuonminh run` first" in done.stderr
