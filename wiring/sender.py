"""Sends signed demo orders to a running platform, with progress: demos, kill tests, benchmarks."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from vuonminh.wiring.demo import demo_order


def sign_body(body: bytes, secret: str, timestamp: int | None = None) -> str:
    # The signing rule lives with the webhook it protects.
    from vuonminh.orders.webhooks import sign

    return sign(body, secret=secret, timestamp=int(time.time()) if timestamp is None else timestamp)


@dataclass
class SendReport:
    statuses: Counter = field(default_factory=Counter)
    accepted_order_ids: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> str:
        rate = len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0
        return (
            f"{sum(self.statuses.values())} sent in {self.elapsed_s:.1f} s ({rate:.0f}/s); "
            f"statuses {dict(sorted(self.statuses.items()))}; latency p50 {self.percentile(50) * 1000:.1f} ms, "
            f"p99 {self.percentile(99) * 1000:.1f} ms"
        )


async def send_orders(
    *,
    base_url: str,
    secret: str | None = None,
    shop_secrets: dict[str, str] | None = None,
    count: int,
    concurrency: int = 8,
    run_id: str | None = None,
    seed: int = 1,
    livestream_id: str | None = None,
    progress: bool = True,
    retries: int = 0,
    report: SendReport | None = None,
) -> SendReport:
    """Posts `count` orders; with `retries`, a failed delivery is retried as a shop would.

    With `shop_secrets` (shop id -> its webhook secret) the orders are spread over those shops,
    each signed with its own shop's secret; else they come from the demo shops, signed with the
    one deprecated global `secret`. Pass `report` to watch it fill while the orders go out.
    """
    if not shop_secrets and not secret:
        raise ValueError("send_orders needs shop_secrets (a secret per shop) or the global secret")
    run_id = run_id or f"demo-{int(time.time())}"
    rng = random.Random(seed)
    shops = sorted(shop_secrets) if shop_secrets else None
    bodies = [demo_order(i, rng=rng, run_id=run_id, livestream_id=livestream_id, shops=shops) for i in range(count)]

    def secret_for(body: dict) -> str:
        return shop_secrets[body["shop_id"]] if shop_secrets else secret  # type: ignore[return-value]

    report = report if report is not None else SendReport()
    next_index = 0
    started = time.perf_counter()
    last_print = 0.0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index, last_print
        while next_index < count:
            body = bodies[next_index]
            next_index += 1
            raw = json.dumps(body, ensure_ascii=False).encode()
            for attempt in range(retries + 1):
                signature = sign_body(raw, secret_for(body))
                sent_at = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/webhooks/direct",
                        content=raw,
                        headers={"content-type": "application/json", "X-VuonMinh-Signature": signature},
                    )
                    status = str(response.status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                report.latencies_s.append(time.perf_counter() - sent_at)
                if status.startswith("2"):
                    report.accepted_order_ids.append(body["order_id"])
                    break
                if attempt < retries:
                    await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
            report.statuses[status] += 1
            now = time.perf_counter()
            done = sum(report.statuses.values())
            if progress and (now - last_print > 1 or done == count):
                last_print = now
                print(f"\r  {done}/{count} orders sent ({done * 100 // count}%)", end="", file=sys.stderr, flush=True)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    if progress:
        print(file=sys.stderr)
    report.elapsed_s = time.perf_counter() - started
    return report
