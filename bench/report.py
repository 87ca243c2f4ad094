"""Turns the benchmark's measurements into the markdown table (and reads py-spy profiles)."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_TITLES = {
    "raw": "raw ASGI app answering 202 (uvicorn, httptools, uvloop)",
    "fastapi": "bare FastAPI route answering 202",
    "embedded": "`vuonminh run` intake, `/v1/webhooks/direct`",
    "kafka": "`vuonminh serve orders` intake on Kafka",
}


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats
    return ordered[min(len(ordered), int(rank)) - 1]


def censored_percentile(observed: list[float], censored: list[float], p: float) -> tuple[float | None, bool]:
    """Percentile of latencies some of which were never seen end (`censored`: how long they had
    been waiting when the watch stopped, so lower bounds). Returns (value, is_a_lower_bound)."""
    values = sorted([(v, False) for v in observed] + [(v, True) for v in censored])
    if not values:
        return None, False
    rank = max(1, -(-len(values) * p // 100))
    value, bound = values[min(len(values), int(rank)) - 1]
    # Exact only if no unfinished one could still end below it.
    return value, bound or any(c < value for c in censored)


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def summarise_intake(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over a target's wrk runs (each run: wrk's BENCH_RESULT numbers)."""
    rates = [r["requests"] / (r["duration_us"] / 1e6) for r in runs]
    errors = [r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"] for r in runs]
    return {
        "rate": statistics.median(rates),
        "rates": rates,
        "p50_ms": statistics.median(r["p50_us"] / 1000 for r in runs),
        "p99_ms": statistics.median(r["p99_us"] / 1000 for r in runs),
        "errors": sum(errors),
        "non_2xx": sum(r["non_2xx_3xx"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "repeated": max(r["repeated_at_least"] for r in runs),
        "runs": len(runs),
    }


def intake_table(summary: dict[str, dict[str, Any]], *, connections: int, duration_s: int, threads: int) -> str:
    fastapi = summary.get("fastapi", {}).get("rate")
    lines = [
        f"wrk, {threads} threads, {connections} connections, {duration_s} s per run, signed unique orders; "
        "medians over the runs (every run starts its target afresh; targets take turns).",
        "",
        "| target | requests/s (median) | runs | p50 | p99 | socket errors / timeouts | non-2xx | × bare FastAPI |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for target, s in summary.items():
        ratio = f"{s['rate'] / fastapi:.2f}×" if fastapi else "–"
        lines.append(
            f"| {TARGET_TITLES.get(target, target)} | {_n(s['rate'])} | {' / '.join(_n(r) for r in s['rates'])} | "
            f"{s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | {s['errors']} | {s['non_2xx']} | {ratio} |"
        )
    repeated = {t: s["repeated"] for t, s in summary.items() if t in ("embedded", "kafka") and s["repeated"]}
    if repeated:
        lines += ["", f"Orders sent again after a file was used up (raise `--wrk-orders`): {repeated}."]
    return "\n".join(lines)


def drain_table(drains: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| mode | orders | accepted | 503/429 replies (retried) | never accepted | intake req/s | reply p50 / p99 "
        "| last counted after | orders/s end to end | counted after the last request | exactly once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode, d in drains.items():
        lines.append(
            f"| {mode} | {_n(d['orders'])} | {_n(d['accepted'])} | {_n(d['refusals'])} | {_n(d['never_accepted'])} "
            f"| {_n(d['intake_rate'])} | {_ms(d['reply_p50_s'])} / {_ms(d['reply_p99_s'])} | {_ms(d['drain_s'])} "
            f"| {_rate(d)} | {_ms(d['after_last_request_s'])} | {d['exactly_once']} |"
        )
    return "\n".join(lines)


def _rate(drain: dict[str, Any]) -> str:
    if drain.get("end_to_end_rate") is not None:
        return _n(drain["end_to_end_rate"])
    if drain.get("partial_rate") is not None:
        return f"{_n(drain['partial_rate'])} (gave up: {_n(drain['counted'])} counted)"
    return "–"


def _bound(latency: dict[str, Any], name: str) -> str:
    return ("≥ " if latency.get(f"{name}_is_lower_bound") else "") + _ms(latency[f"{name}_s"])


def latency_table(latencies: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| mode | rate asked / held | orders | accepted | sampled | p50 | p90 | p99 | max | not counted | "
        "reply p99 | send lag p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, d in latencies.items():
        lines.append(
            f"| {mode} | {_n(d['rate_asked'])} / {_n(d['rate_held'])} /s | {_n(d['orders'])} | {_n(d['accepted'])} "
            f"| {_n(d['sampled'])} | {_bound(d, 'p50')} | {_bound(d, 'p90')} | {_bound(d, 'p99')} | {_bound(d, 'max')} "
            f"| {_n(d['not_counted'])} | {_ms(d['reply_p99_s'])} | {_ms(d['send_lag_p99_s'])} |"
        )
    return "\n".join(lines)


def rss_table(rss: list[dict[str, Any]]) -> str:
    peaks: dict[tuple[str, str], float] = {}
    for row in rss:  # the highest over a step's runs
        key = (row["step"], row["process"])
        peaks[key] = max(peaks.get(key) or 0.0, row["peak_mb"] or 0.0)
    lines = ["| step | process | peak RSS (VmHWM), highest over the step's runs |", "|---|---|---:|"]
    for (step, process), peak in peaks.items():
        lines.append(f"| {step} | {process} | {_n(peak)} MB |")
    return "\n".join(lines)


def cpu_table(cpu: dict[str, dict[str, float]]) -> str:
    lines = [
        "| step | wall time | machine's cores busy | this benchmark's processes "
        "| the rest (Kafka, PostgreSQL, others) |",
        "|---|---:|---:|---:|---:|",
    ]
    for step, c in cpu.items():
        rest = max(0.0, c["machine_cores_busy"] - c["our_cores_busy"])
        lines.append(
            f"| {step} | {c['elapsed_s']:.0f} s | {c['machine_cores_busy']:.2f} | {c['our_cores_busy']:.2f} "
            f"| {rest:.2f} |"
        )
    return "\n".join(lines)


def _area(file: str) -> str:
    """Which library (or which part of ours) a frame's file belongs to."""
    if "site-packages/" in file:
        top = file.split("site-packages/", 1)[1].split("/", 1)[0]
        return top.removesuffix(".py").split(".")[0] or top
    path = Path(file)
    try:
        relative = path.relative_to(ROOT)
    except ValueError:
        relative = None
    if relative is not None and relative.parts:
        if relative.parts[0] == "services" and len(relative.parts) > 1:
            return f"vuonminh.{relative.parts[1]}"
        return f"vuonminh.{relative.parts[0]}"
    if "/lib/python3" in file:
        rest = file.split("/lib/python3", 1)[1].split("/", 1)
        return "stdlib " + (rest[1].split("/", 1)[0].removesuffix(".py") if len(rest) > 1 else "?")
    return "python"


def summarise_profile(path: Path, *, duration_s: float, top: int = 6) -> dict[str, Any]:
    """Share of sampled (non-idle) time by library and by function (self time), from py-spy's
    speedscope output; `busy` is sampled time over the recording's length (1.0 = one core)."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    by_area: Counter = Counter()
    by_function: Counter = Counter()
    ours_inclusive: Counter = Counter()
    total = 0.0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            total += weight
            leaf = frames[stack[-1]]
            by_area[_area(leaf["file"])] += weight
            by_function[f"{leaf['name']} ({Path(leaf['file']).name}:{leaf['line']})"] += weight
            names = set()
            for index in stack:
                frame = frames[index]
                # The command-line entry frames hold every sample: they would say nothing.
                if _area(frame["file"]).startswith("vuonminh") and not frame["file"].endswith("wiring/cli.py"):
                    names.add(f"{frame['name']} ({Path(frame['file']).name})")
            for name in names:  # once per sample, however deep the recursion
                ours_inclusive[name] += weight

    def shares(counter: Counter) -> list[tuple[str, float]]:
        return [(name, weight / total) for name, weight in counter.most_common(top)] if total else []

    return {
        "file": str(path),
        "busy": total / duration_s if duration_s else None,
        "areas": shares(by_area),
        "self": shares(by_function),
        "ours_inclusive": shares(ours_inclusive),
    }


def profile_table(profiles: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| profile | cores busy | self time by library | top functions, self time | our code, inclusive |",
        "|---|---:|---|---|---|",
    ]

    def fmt(items: list[tuple[str, float]], n: int) -> str:
        return "<br>".join(f"{share:.0%} {name.replace('|', '/')}" for name, share in items[:n]) or "–"

    for name, p in profiles.items():
        lines.append(
            f"| {name} | {_n(p['busy'], 2)} | {fmt(p['areas'], 6)} | {fmt(p['self'], 5)} | "
            f"{fmt(p['ours_inclusive'], 5)} |"
        )
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        f"# VươnMình throughput benchmark, {meta['date']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Code: `{meta['commit']}`; machine: {meta['machine']}; {meta['versions']}.  ",
        f"Load average before the run: {meta['loadavg_before']}; after: {meta.get('loadavg_after', '–')}.",
    ]
    if meta.get("quick"):
        out += ["", "**Quick mode (smoke run): too short to quote.**"]
    if results.get("intake"):
        out += ["", "## 1. HTTP intake", "", intake_table(results["intake"]["summary"], **results["intake"]["wrk"])]
    if results.get("drain"):
        out += [
            "",
            "## 2. Burst and drain (webhook → counted in analytics)",
            "",
            f"{results['drain_setup']}",
            "",
            drain_table(results["drain"]),
        ]
    if results.get("latency"):
        out += [
            "",
            "## 3. Webhook to KPI at a steady rate",
            "",
            f"{results['latency_setup']}",
            "",
            latency_table(results["latency"]),
        ]
    if results.get("rss"):
        out += ["", "## 4. Peak memory per process", "", rss_table(results["rss"])]
    if results.get("profiles"):
        setup = results.get("profiles_setup", "")
        out += ["", "## 5. Profiles (py-spy)", "", setup, "", profile_table(results["profiles"])]
    if results.get("cpu"):
        out += ["", "## The machine during each step", "", cpu_table(results["cpu"])]
    if results.get("notes"):
        out += ["", "## Notes", "", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    # Renders a run's table again from its raw numbers: python -m bench.report bench/results/<run>.json
    import sys

    print(render(json.loads(Path(sys.argv[1]).read_text())), end="")
