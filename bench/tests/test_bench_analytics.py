"""bench/analytics at a tiny size: the rebuild step replays what it wrote, every event applied."""

import argparse
import asyncio

from bench.analytics import percentile, rebuild


def test_rebuild_step_applies_every_event_it_wrote():
    result = asyncio.run(rebuild(argparse.Namespace(events=500, quiet=True)))
    assert result["events"] == 500 and result["applied"] == 500
    assert result["seconds"] >= 0


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
