"""The benchmark's own helpers (not the platform's speed: nothing here is timed)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bench import report
from bench.client import Sender
from bench.orders import signed_orders, write_wrk_requests
from vuonminh.orders.models import DirectOrderWebhook
from vuonminh.orders.webhooks import SignatureError, verify

SECRET = "bench-secret"


def test_orders_are_unique_valid_and_signed_for_the_webhook():
    orders = signed_orders(50, secret=SECRET, run_id="t1")
    assert len({o.external_id for o in orders}) == 50
    assert len({o.order_id for o in orders}) == 50
    now = int(time.time())
    for order in orders:
        verify(order.signature, order.body, secrets=[SECRET], now=now, tolerance_s=300)
        assert DirectOrderWebhook.model_validate_json(order.body).order_id == order.external_id
    with pytest.raises(SignatureError):
        verify(orders[0].signature, orders[1].body, secrets=[SECRET], now=now, tolerance_s=300)


def test_a_late_retry_is_signed_again():
    order = signed_orders(1, secret=SECRET, run_id="t2")[0]
    later = order.resigned(SECRET, now=order.signed_at + 400)
    verify(later.signature, later.body, secrets=[SECRET], now=order.signed_at + 400, tolerance_s=300)
    with pytest.raises(SignatureError, match="more than 300 s"):
        verify(order.signature, order.body, secrets=[SECRET], now=order.signed_at + 400, tolerance_s=300)


def test_wrk_file_has_one_request_per_line(tmp_path: Path):
    orders = signed_orders(20, secret=SECRET, run_id="t3")
    path = tmp_path / "requests.txt"
    assert write_wrk_requests(path, orders) == 20
    lines = path.read_bytes().splitlines()
    assert len(lines) == 20
    signature, body = lines[7].split(b"\t", 1)
    assert (signature.decode(), body) == (orders[7].signature, orders[7].body)


async def test_the_burst_client_retries_refusals_until_accepted():
    """A stub server refuses every order once with 503 (Retry-After: 0), then accepts it."""
    seen: dict[bytes, int] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            body = await reader.readexactly(length)
            seen[body] = seen.get(body, 0) + 1
            if seen[body] == 1:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 4\r\n\r\nbusy")
            else:
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    server = await asyncio.start_server(lambda r, w: handle_quietly(handle, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sender = Sender(host="127.0.0.1", port=port, secret=SECRET, timeout_s=5)
        stats = await asyncio.wait_for(sender.burst(signed_orders(30, secret=SECRET, run_id="t4"), connections=4), 20)
    finally:
        server.close()
    assert len(stats.accepted) == 30
    assert stats.refusals == 30
    assert stats.replies == {503: 30, 202: 30}
    assert all(d.attempts == 2 for d in stats.deliveries)


async def handle_quietly(handle, reader, writer) -> None:  # noqa: ANN001
    try:
        await handle(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 50) == 50
    assert report.percentile(values, 99) == 99
    assert report.percentile(values, 100) == 100
    assert report.percentile([], 50) is None


def test_unfinished_latencies_make_lower_bounds():
    observed = [1.0, 2.0, 3.0, 4.0]
    assert report.censored_percentile(observed, [], 50) == (2.0, False)
    assert report.censored_percentile(observed, [10.0], 50) == (3.0, False)  # 10+ s cannot fall below 3 s
    assert report.censored_percentile(observed, [10.0], 100) == (10.0, True)
    assert report.censored_percentile(observed, [2.5], 100) == (4.0, True)  # the 2.5+ s one may end later


def _wrk_run(requests: int, p99_us: int, non_2xx: int = 0) -> dict:
    return {
        "duration_us": 20_000_000, "requests": requests, "bytes": 0, "connect_errors": 0, "read_errors": 0,
        "write_errors": 0, "non_2xx_3xx": non_2xx, "timeouts": 0, "p50_us": 5_000, "p90_us": 9_000,
        "p99_us": p99_us, "max_us": 50_000, "loaded": 10_000, "repeated_at_least": 0,
    }  # fmt: skip


def test_intake_table_takes_medians_and_ratios_to_bare_fastapi():
    summary = {
        "fastapi": report.summarise_intake([_wrk_run(100_000, 18_000), _wrk_run(120_000, 20_000)] * 1),
        "kafka": report.summarise_intake([_wrk_run(20_000, 240_000), _wrk_run(30_000, 200_000, 3), _wrk_run(0, 1)]),
    }
    assert summary["kafka"]["rate"] == 1_000  # median of 1,000, 1,500 and 0 req/s
    table = report.intake_table(summary, connections=64, duration_s=20, threads=2)
    kafka_row = next(line for line in table.splitlines() if "serve orders" in line)
    assert "| 1,000 |" in kafka_row and "| 0.18× |" in kafka_row  # 1,000 / 5,500
    assert "| 3 |" in kafka_row  # non-2xx replies added up


def test_profile_summary_shares_self_time_by_library(tmp_path: Path):
    site = "/x/.venv/lib/python3.11/site-packages"
    profile = {
        "shared": {
            "frames": [
                {"name": "main", "file": str(report.ROOT / "wiring/cli.py"), "line": 1},
                {"name": "process", "file": str(report.ROOT / "shared/inbox.py"), "line": 10},
                {"name": "execute", "file": f"{site}/asyncpg/connection.py", "line": 5},
                {"name": "compile", "file": f"{site}/sqlalchemy/sql/compiler.py", "line": 7},
            ]
        },
        "profiles": [{"type": "sampled", "samples": [[0, 1, 2], [0, 1, 2], [0, 1, 3], [0]], "weights": [0.01] * 4}],
    }
    path = tmp_path / "p.speedscope.json"
    path.write_text(json.dumps(profile))
    summary = report.summarise_profile(path, duration_s=0.08)
    assert summary["busy"] == pytest.approx(0.5)
    assert dict(summary["areas"]) == pytest.approx({"asyncpg": 0.5, "sqlalchemy": 0.25, "vuonminh.wiring": 0.25})
    assert dict(summary["ours_inclusive"]) == pytest.approx({"process (inbox.py)": 0.75})
    assert "50% asyncpg" in report.profile_table({"orders": summary})


def test_render_writes_every_section_it_has():
    results = {
        "meta": {
            "date": "d",
            "command": "bench/run",
            "commit": "abc",
            "machine": "m",
            "versions": "v",
            "loadavg_before": "1 1 1",
            "quick": False,
        },  # fmt: skip
        "rss": [
            {"step": "2. drain", "process": "kafka: orders", "peak_mb": 123.4},
            {"step": "2. drain", "process": "kafka: orders", "peak_mb": 99.0},
        ],
        "latency": {},
        "notes": ["the machine was shared"],
    }
    text = report.render(results)
    assert "| 2. drain | kafka: orders | 123 MB |" in text
    assert "- the machine was shared" in text
    assert "| 99 MB |" not in text  # one row per process and step: its highest peak
    assert "## 1. HTTP intake" not in text and "## 3." not in text
