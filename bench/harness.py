"""The throughput benchmark: intake, burst and drain, steady-rate latency, memory, profiles.

Run it with `bench/run` (which installs what it needs and starts Kafka and PostgreSQL);
`bench/run --help` lists the knobs, bench/README.md says how to read the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform as host
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.client import Delivery, Sender
from bench.orders import WEBHOOK_PATH, signed_orders, write_wrk_requests
from bench.stack import (
    SECRET,
    BaselineProcess,
    CpuWindow,
    Platform,
    Profiler,
    peak_rss_mb,
    start_embedded,
    start_kafka,
)
from vuonminh.shared.timeutil import utc_now, vietnam_day
from vuonminh.wiring.demo import demo_catalog
from vuonminh.wiring.testing import delete_topics, operator_headers, scratch_database

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "bench" / "signed.lua"
SERVICES = ("catalog", "orders", "logistics", "analytics")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds per step: a smoke run, not figures")
    parser.add_argument("--steps", default="intake,drain,latency", help="which of intake,drain,latency to run")
    parser.add_argument("--modes", default="embedded,kafka", help="which platforms: embedded,kafka")
    parser.add_argument("--targets", default="raw,fastapi,embedded,kafka", help="intake targets (step 1)")
    parser.add_argument("--runs", type=int, help="wrk runs per target (default 3; quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 20; quick 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--wrk-orders", type=int, help="signed orders per intake run (default: sized from the rate)")
    parser.add_argument("--burst", type=int, help="orders in the burst (default 20000; quick 500)")
    parser.add_argument("--burst-connections", type=int, default=64, help="client connections for the burst")
    parser.add_argument("--rate", type=float, help="steady rate, orders/s (default 300; quick 50)")
    parser.add_argument("--rate-duration", type=int, help="seconds at the steady rate (default 60; quick 5)")
    parser.add_argument("--profile-seconds", type=int, help="py-spy recording length (default 20; quick 3; 0: none)")
    parser.add_argument(
        "--drain-timeout",
        type=int,
        help="give up waiting for the KPIs after this many seconds (default: 300 + orders / 20)",
    )
    parser.add_argument("--output", type=Path, help="markdown file (default bench/results/<date-time>.md)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "runs": 1 if quick else 3,
        "duration": 3 if quick else 20,
        "burst": 500 if quick else 20_000,
        "rate": 50.0 if quick else 300.0,
        "rate_duration": 5 if quick else 60,
        "profile_seconds": 3 if quick else 20,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.steps = [s for s in args.steps.split(",") if s]
    args.modes = [m for m in args.modes.split(",") if m]
    args.targets = [t for t in args.targets.split(",") if t]
    for name, allowed, given in (
        ("steps", {"intake", "drain", "latency"}, args.steps),
        ("modes", {"embedded", "kafka"}, args.modes),
        ("targets", {"raw", "fastapi", "embedded", "kafka"}, args.targets),
    ):
        unknown = set(given) - allowed
        if unknown:
            parser.error(f"--{name}: unknown {sorted(unknown)}; choose among {sorted(allowed)}")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, results_dir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results_dir = results_dir
        self.profiles_dir = results_dir / "profiles"
        self.server_url = os.environ.get("DATABASE_URL", "")
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        self.results: dict[str, Any] = {"rss": [], "profiles": {}, "cpu": {}, "notes": []}
        self.stamp = time.strftime("%H%M%S")

    def needs_kafka(self) -> bool:
        return ("kafka" in self.args.modes and {"drain", "latency"} & set(self.args.steps)) or (
            "intake" in self.args.steps and "kafka" in self.args.targets
        )

    # --- platforms ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def platform(self, mode: str, label: str, *, services: tuple[str, ...] = SERVICES):
        """A fresh platform (own data dir, or own topics and database), stopped and cleaned on exit."""
        workdir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.workdir))
        if mode == "embedded":
            started = await start_embedded(workdir)
            try:
                yield started
            finally:
                started.stop()
            return
        async with scratch_database(self.server_url, prefix="vuonminh_bench") as database_url:
            started = await start_kafka(workdir, database_url, services=services, demo="catalog" in services)
            try:
                yield started
            finally:
                started.stop()
                await started.databases.close()
                with contextlib.suppress(Exception):
                    await delete_topics(self.bootstrap, started.namespace)

    def keep_rss(self, step: str, platform: Platform) -> None:
        for name, peak in platform.peak_rss_mb().items():
            self.results["rss"].append({"step": step, "process": f"{platform.mode}: {name}", "peak_mb": peak})

    # --- 1. intake ---------------------------------------------------------------------------

    async def intake(self) -> None:
        args = self.args
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in args.targets}
        best_rate: dict[str, float] = {}
        window = CpuWindow()
        for round_no in range(1, args.runs + 1):
            for target in args.targets:
                log(f"intake {target}, run {round_no}/{args.runs}")
                result = await self.intake_run(target, round_no, best_rate.get(target))
                runs[target].append(result)
                rate = result["requests"] / (result["duration_us"] / 1e6)
                best_rate[target] = max(best_rate.get(target, 0), rate)
                log(
                    f"  {rate:,.0f} req/s, p99 {result['p99_us'] / 1000:.1f} ms, "
                    f"non-2xx {result['non_2xx_3xx']}, errors "
                    f"{result['connect_errors'] + result['read_errors'] + result['write_errors'] + result['timeouts']}"
                )
        self.results["cpu"]["1. intake"] = window.close()
        self.results["intake"] = {
            "runs": runs,
            "summary": {t: report.summarise_intake(r) for t, r in runs.items() if r},
            "wrk": {"connections": args.connections, "duration_s": args.duration, "threads": args.threads},
        }

    async def intake_run(self, target: str, round_no: int, best_rate: float | None) -> dict[str, Any]:
        args = self.args
        if target in ("raw", "fastapi"):
            # The baselines do not read the orders: a short file, cycled, costs wrk the same per request.
            count = args.wrk_orders or 20_000
        else:
            # Enough unique orders for the whole run at 1.5× the best rate seen so far.
            guess = best_rate * 1.5 if best_rate else 3_000
            count = args.wrk_orders or max(5_000, int(guess * args.duration))
        if target in ("raw", "fastapi"):
            server = BaselineProcess(f"{target}_app", log_path=self.workdir / f"{target}.log").start()
            try:
                await server.wait_ready()
                result = await self.wrk(server.url, target, round_no, count)
                peak = peak_rss_mb(server.process.pid)
            finally:
                server.stop()
            self.results["rss"].append({"step": "1. intake", "process": f"baseline: {target}", "peak_mb": peak})
            return result
        services = ("orders",) if target == "kafka" else SERVICES
        async with self.platform(target, f"intake-{target}", services=services) as platform:
            result = await self.wrk(platform.intake.url, target, round_no, count)
            if round_no == args.runs:
                self.keep_rss("1. intake", platform)
        return result

    async def wrk(self, url: str, target: str, round_no: int, count: int) -> dict[str, Any]:
        args = self.args
        orders = signed_orders(count, secret=SECRET, run_id=f"wrk{self.stamp}{target[0]}{round_no}")
        requests_file = self.workdir / f"wrk-{target}-{round_no}.txt"
        write_wrk_requests(requests_file, orders)
        del orders
        command = [
            "wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
            "--timeout", "10s", "-s", str(LUA), url + WEBHOOK_PATH, "--", str(requests_file), str(args.threads),
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout=args.duration + 120)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        requests_file.unlink(missing_ok=True)
        text = output.decode(errors="replace")
        match = re.search(r"^BENCH_RESULT (\{.*\})$", text, re.MULTILINE)
        if process.returncode != 0 or not match:
            raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}")
        result = json.loads(match.group(1))
        result["unique_orders"] = count
        return result

    # --- 2. burst and drain ------------------------------------------------------------------

    async def drain(self) -> None:
        args = self.args
        self.results["drain_setup"] = (
            f"{args.burst:,} signed unique orders posted by an asyncio client on {args.burst_connections} "
            "connections as fast as intake takes them (a 503/429 is retried after its Retry-After, at most 30 "
            "tries); the clock runs from the first request until analytics has counted the last accepted order "
            "(its fact rows, polled every 0.5 s). Then: every accepted order stored once, every stored order "
            "accepted, and each demo commune's KPIs (orders, GMV, kg) equal to a recount from orders' own rows."
        )
        self.results["drain"] = {}
        for mode in args.modes:
            log(f"drain {mode}: {args.burst:,} orders")
            window = CpuWindow()
            async with self.platform(mode, f"drain-{mode}") as platform:
                self.results["drain"][mode] = await self.drain_run(platform)
                self.keep_rss("2. drain", platform)
            self.results["cpu"][f"2. drain, {mode}"] = window.close()

    async def drain_run(self, platform: Platform) -> dict[str, Any]:
        args = self.args
        run_id = f"burst{self.stamp}{platform.mode[0]}"
        orders = signed_orders(args.burst, secret=SECRET, run_id=run_id)
        sender = Sender(host="127.0.0.1", port=platform.intake.port, secret=SECRET)
        profiler = Profiler(self.profiles_dir, duration_s=args.profile_seconds)
        profiler.record(f"drain-{platform.mode}-intake", platform.intake.process.pid)
        burst = asyncio.create_task(sender.burst(orders, connections=args.burst_connections))
        timeout = args.drain_timeout or int(300 + args.burst / 20)
        deadline = time.monotonic() + timeout
        counted, counted_at, last_progress, last_poll = 0, None, time.monotonic(), time.perf_counter()
        consumer_profiles = False
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                polled_at = last_poll = time.perf_counter()
                now_counted = await platform.databases.scalar(
                    "analytics", "SELECT count(DISTINCT order_id) FROM {s}seller_order_facts"
                )
                if now_counted != counted:
                    counted, last_progress = now_counted, time.monotonic()
                if burst.done():
                    if not consumer_profiles:
                        consumer_profiles = True
                        log(f"  burst sent in {sender.stats.finished_s - sender.stats.started_s:.1f} s; draining")
                        for name, process in platform.processes.items():
                            if name != "catalog":
                                profiler.record(f"drain-{platform.mode}-{name}-after-burst", process.process.pid)
                    if counted >= len(sender.stats.accepted):
                        counted_at = polled_at
                        break
                if time.monotonic() - last_progress > 180:
                    self.results["notes"].append(f"drain {platform.mode}: no progress for 180 s, gave up")
                    break
            if counted_at is None and time.monotonic() >= deadline:
                self.results["notes"].append(f"drain {platform.mode}: not all counted within {timeout} s")
        finally:
            if not burst.done():
                burst.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await burst
            await profiler.wait()
        self.summarise_profiles(profiler)
        stats = sender.stats
        accepted = stats.accepted
        accepted_ids = {d.order.external_id for d in accepted}
        checks = await self.exactly_once(platform, run_id, accepted_ids, finished=counted_at is not None)
        intake_s = stats.finished_s - stats.started_s
        drain_s = counted_at - stats.started_s if counted_at else None
        log(f"  counted {counted}/{len(accepted)}; {checks['verdict']}")
        return {
            "orders": len(orders),
            "accepted": len(accepted),
            "refusals": stats.refusals,
            "never_accepted": sum(stats.failed.values()),
            "failed_statuses": dict(stats.failed),
            "replies": {str(k): v for k, v in stats.replies.items()},
            "intake_rate": len(accepted) / intake_s if intake_s else None,
            "reply_p50_s": report.percentile(stats.reply_latencies_s, 50),
            "reply_p99_s": report.percentile(stats.reply_latencies_s, 99),
            "drain_s": drain_s,
            "end_to_end_rate": len(accepted) / drain_s if drain_s else None,
            # When the wait gave up: the rate until then, over the orders counted by then.
            "partial_rate": None if drain_s else counted / (last_poll - stats.started_s),
            "after_last_request_s": counted_at - stats.finished_s if counted_at else None,
            "counted": counted,
            "exactly_once": checks["verdict"],
            "checks": checks,
        }

    async def exactly_once(
        self, platform: Platform, run_id: str, accepted_ids: set[str], *, finished: bool
    ) -> dict[str, Any]:
        """Stored orders = accepted ones; counted orders = placed ones; KPIs = a recount.

        When the wait gave up before the drain finished, only what must already hold is checked:
        nothing stored twice, nothing stored that was never accepted."""
        db = platform.databases
        like = f"external_order_id LIKE '{run_id}-%'"
        # An order placed, then refused by the stock step, is counted, then taken out again when its
        # rejection arrives: the two sides agree once every placed order is confirmed or refused and
        # those last events are through.
        for _ in range(180):
            stored_rows = await db.fetch("orders", f"SELECT external_order_id, status FROM {{s}}orders WHERE {like}")
            stored_ids = [row[0] for row in stored_rows]
            placed = sum(1 for row in stored_rows if row[1] in ("placed", "confirmed"))
            undecided = sum(1 for row in stored_rows if row[1] == "placed")  # the stock step not through yet
            counted = await db.scalar(
                "analytics", "SELECT count(DISTINCT order_id) FROM {s}seller_order_facts WHERE NOT cancelled"
            )
            if not finished or (counted == placed and not undecided):
                break
            await asyncio.sleep(1)
        recount_rows = await db.fetch(
            "orders",
            "SELECT l.seller_ward_code, count(DISTINCT l.order_id), sum(l.line_total_vnd), sum(l.line_weight_g) "
            "FROM {s}order_lines l JOIN {s}orders o ON o.id = l.order_id "
            f"WHERE o.status IN ('placed', 'confirmed') AND o.{like} GROUP BY l.seller_ward_code",
        )
        recount = {ward: (n, int(gmv), round(int(grams) / 1000, 3)) for ward, n, gmv, grams in recount_rows}
        today = vietnam_day(utc_now())
        kpis = {}
        async with httpx.AsyncClient(headers=operator_headers(), base_url=platform.analytics.url, timeout=30) as client:
            for ward in sorted({s["ward_code"] for s in demo_catalog()["sellers"]} | set(recount)):
                response = await client.get(
                    f"/v1/kpis/communes/{ward}",
                    params={"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))},
                )
                response.raise_for_status()
                body = response.json()
                kpis[ward] = (body["orders"], body["gmv_vnd"], body["kg_sold"])
        problems = []
        if len(stored_ids) != len(set(stored_ids)):
            problems.append(f"{len(stored_ids) - len(set(stored_ids))} orders stored twice")
        if not finished:
            unaccepted = len(set(stored_ids) - accepted_ids)
            if unaccepted:
                problems.append(f"{unaccepted} stored but never accepted")
            verdict = "NO: " + "; ".join(problems) if problems else "so far: none twice, none unaccepted"
            return {
                "stored": len(stored_ids), "placed": placed, "counted": counted, "kpis": kpis,
                "verdict": f"unfinished ({len(stored_ids):,} of {len(accepted_ids):,} stored): {verdict}",
            }  # fmt: skip
        if set(stored_ids) != accepted_ids:
            problems.append(
                f"stored {len(set(stored_ids))}, accepted {len(accepted_ids)}: "
                f"{len(accepted_ids - set(stored_ids))} accepted but not stored, "
                f"{len(set(stored_ids) - accepted_ids)} stored but never accepted"
            )
        if counted != placed:
            problems.append(f"analytics counts {counted} orders, orders placed {placed}")
        if undecided:
            problems.append(f"{undecided} orders still wait for the stock step after 3 min")
        wrong = {w: (kpis.get(w), recount.get(w, (0, 0, 0.0))) for w in kpis if kpis[w] != recount.get(w, (0, 0, 0.0))}
        if wrong:
            problems.append(f"KPIs differ from the recount (KPI, recount): {wrong}")
        verdict = "yes" if not problems else "NO: " + "; ".join(problems)
        if not problems and placed != len(stored_ids):
            verdict += f" ({len(stored_ids) - placed} rejected by orders)"
        return {"stored": len(stored_ids), "placed": placed, "counted": counted, "kpis": kpis, "verdict": verdict}

    # --- 3. steady-rate latency --------------------------------------------------------------

    async def latency(self) -> None:
        args = self.args
        count = int(args.rate * args.rate_duration)
        every = max(1, round(args.rate / 30))
        self.results["latency_setup"] = (
            f"{args.rate:g} orders/s for {args.rate_duration} s ({count:,} orders) from an open-loop asyncio "
            "client (order i leaves at start + i/rate whatever the replies; a new connection opens when all are "
            f"busy). One accepted order in {every} is watched: analytics' fact rows are polled for it every "
            "0.1 s; its latency is from the request leaving the client to the first poll that finds it counted "
            "(so up to ~0.1 s high). 'held' is the rate the client really kept; 'send lag' how late requests left."
        )
        self.results["latency"] = {}
        for mode in args.modes:
            log(f"latency {mode}: {args.rate:g}/s for {args.rate_duration} s")
            window = CpuWindow()
            async with self.platform(mode, f"latency-{mode}") as platform:
                self.results["latency"][mode] = await self.latency_run(platform, count, every)
                self.keep_rss("3. latency", platform)
            self.results["cpu"][f"3. latency, {mode}"] = window.close()

    async def latency_run(self, platform: Platform, count: int, every: int) -> dict[str, Any]:
        args = self.args
        orders = signed_orders(count, secret=SECRET, run_id=f"steady{self.stamp}{platform.mode[0]}")
        watched = {o.external_id for o in orders[::every]}
        pending: dict[str, Delivery] = {}
        latencies: list[float] = []
        sender = Sender(host="127.0.0.1", port=platform.intake.port, secret=SECRET)

        def on_accepted(delivery: Delivery) -> None:
            if delivery.order.external_id in watched:
                pending[delivery.order.order_id] = delivery

        sending = asyncio.create_task(sender.steady(orders, rate_per_s=args.rate, on_accepted=on_accepted))
        timeout = args.drain_timeout or int(300 + count / 20)
        deadline = time.monotonic() + args.rate_duration + timeout
        try:
            while time.monotonic() < deadline and not (sending.done() and not pending):
                await asyncio.sleep(0.1)
                ids = list(pending)
                polled_at = time.perf_counter()
                for chunk in range(0, len(ids), 500):
                    quoted = ",".join(f"'{i}'" for i in ids[chunk : chunk + 500])  # our uuids: safe to inline
                    sql = f"SELECT DISTINCT order_id FROM {{s}}seller_order_facts WHERE order_id IN ({quoted})"
                    rows = await platform.databases.fetch("analytics", sql)
                    for (order_id,) in rows:
                        delivery = pending.pop(order_id)
                        latencies.append(polled_at - delivery.first_sent_s)
            if sending.done():
                sending.result()
        finally:
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
        stats = sender.stats
        sent_times = [d.first_sent_s for d in stats.deliveries if d.first_sent_s]
        held = (len(sent_times) - 1) / (max(sent_times) - min(sent_times)) if len(sent_times) > 1 else None
        lags = [d.first_sent_s - d.scheduled_s for d in stats.deliveries if d.first_sent_s]
        # Watched orders still uncounted when the wait ended: their latency is at least this long.
        ended = time.perf_counter()
        censored = [ended - d.first_sent_s for d in pending.values()]
        percentiles = {}
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
            value, lower_bound = report.censored_percentile(latencies, censored, p)
            percentiles[f"{name}_s"], percentiles[f"{name}_is_lower_bound"] = value, lower_bound
        result = {
            "orders": count,
            "rate_asked": args.rate,
            "rate_held": held,
            "accepted": len(stats.accepted),
            "replies": {str(k): v for k, v in stats.replies.items()},
            "sampled": len(latencies) + len(pending),
            "not_counted": len(pending),
            **percentiles,
            "reply_p99_s": report.percentile(stats.reply_latencies_s, 99),
            "send_lag_p99_s": report.percentile(lags, 99),
            "connections": getattr(sender, "connections_opened", None),
        }
        log(f"  p50 {result['p50_s']}, p99 {result['p99_s']}, held {held}/s, not counted {len(pending)}")
        return result

    # --- profiles ----------------------------------------------------------------------------

    def summarise_profiles(self, profiler: Profiler) -> None:
        for path in profiler.files:
            name = path.name.removesuffix(".speedscope.json")
            try:
                summary = report.summarise_profile(path, duration_s=profiler.duration_s)
            except (ValueError, KeyError) as error:
                self.results["notes"].append(f"profile {name} unreadable: {error}")
                continue
            summary["file"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
            self.results["profiles"][name] = summary
        self.results["profiles_setup"] = (
            f"`py-spy record --nonblocking --rate 100 --duration {profiler.duration_s}`, speedscope files in "
            f"`{self.profiles_dir.relative_to(ROOT) if self.profiles_dir.is_relative_to(ROOT) else self.profiles_dir}` "
            "(open them at speedscope.app or with `speedscope`). '-intake' starts with the burst's first request; "
            "'-after-burst' when its last reply came. 'cores busy' is sampled non-idle Python time over the "
            "recording (1.0 = one core's worth). Self time in `Runner.run` is the event loop's own C code (uvloop: "
            "sockets, callbacks); `_connection_worker_thread` is aiosqlite's thread running SQLite; "
            "`Condition.wait` and `_worker` are threads of a pool waiting for work, counted as busy by py-spy "
            "(requests that hop to a worker thread for a plain `def` dependency keep such a pool alive)."
        )


def _read(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


async def _meta(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    dirty = " (with uncommitted changes)" if _read(["git", "status", "--porcelain", "--untracked-files=no"]) else ""
    pg = "?"
    if os.environ.get("DATABASE_URL"):
        import asyncpg

        from vuonminh.wiring.testing import asyncpg_dsn

        with contextlib.suppress(Exception):
            connection = await asyncpg.connect(asyncpg_dsn(os.environ["DATABASE_URL"]))
            pg = (await connection.fetchval("SHOW server_version")).split()[0]
            await connection.close()
    wrk = _read(["wrk", "--version"]).split(" [")[0] or "?"
    kafka = os.environ.get("KAFKA_VERSION") or _dev_services_kafka_version()
    return {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": "bench/run" + ("" if not argv else " " + shlex.join(argv)),
        "commit": _read(["git", "log", "-1", "--format=%h %s"]) + dirty,
        "machine": f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB, {host.system()} {host.release()}",
        "versions": f"Python {host.python_version()}, {wrk}, Kafka {kafka}, PostgreSQL {pg}",
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "quick": args.quick,
    }


def _dev_services_kafka_version() -> str:
    match = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', (ROOT / "scripts/dev-services").read_text())
    return match.group(1) if match else "?"


async def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M")
    name = f"quick-{stamp}" if args.quick else stamp
    results_dir = ROOT / "bench" / "results"
    output = args.output or results_dir / f"{name}.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vuonminh-bench-") as scratch:
        bench = Bench(args, Path(scratch), results_dir / name)
        if bench.needs_kafka() and not (bench.server_url and bench.bootstrap):
            sys.exit('Kafka mode needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL: eval "$(scripts/dev-services env)"')
        bench.results["meta"] = await _meta(args, argv)
        log(f"results go to {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
        for step in ("intake", "drain", "latency"):
            if step in args.steps:
                try:
                    await getattr(bench, step)()
                except asyncio.CancelledError:
                    bench.results["notes"].append(f"interrupted during {step}")
                    break
                except Exception as error:  # one failing step still leaves the others' figures
                    bench.results["notes"].append(f"step {step} failed: {type(error).__name__}: {error}")
                    log(f"step {step} failed: {error!r}")
        bench.results["meta"]["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    table = report.render(bench.results)
    output.write_text(table)
    output.with_suffix(".json").write_text(json.dumps(bench.results, indent=1, default=str))
    print(table)
    return 0 if not any(n.startswith(("step", "interrupted")) for n in bench.results["notes"]) else 1


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
