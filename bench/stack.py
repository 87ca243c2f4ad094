"""What the benchmark runs against: the baselines, the embedded platform, the Kafka platform;
reading their databases, their peak memory and their profiles."""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vuonminh.wiring.demo import demo_catalog, demo_listings
from vuonminh.wiring.testing import (
    TEST_SECRET,
    VuonminhProcess,
    asyncpg_dsn,
    eventually,
    free_port,
    operator_headers,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = TEST_SECRET


class BaselineProcess:
    """uvicorn serving one of bench/apps.py's apps: the same server settings as `vuonminh`."""

    def __init__(self, app: str, *, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.args = [
            sys.executable, "-m", "uvicorn", f"bench.apps:{app}", "--host", "127.0.0.1", "--port", str(self.port),
            "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self) -> BaselineProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        async def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.process.returncode}")
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.post(f"{self.url}/v1/webhooks/direct", content=b"{}")).status_code == 202
            except httpx.HTTPError:
                return False

        await eventually(answers, timeout_s=timeout_s, interval_s=0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process has had since it started."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class CpuWindow:
    """CPU used on the whole machine vs by this benchmark's own processes, over a step.

    The machine is shared: the difference is Kafka, PostgreSQL (ours and others' use of
    them) and anybody else's work. Our processes count once they have been waited for."""

    started: float = field(default_factory=time.monotonic)
    machine_start: tuple[int, int] = field(default_factory=lambda: _machine_jiffies())
    ours_start: float = field(default_factory=lambda: _our_cpu_s())

    def close(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        busy0, total0 = self.machine_start
        busy1, total1 = _machine_jiffies()
        cores = os.cpu_count() or 1
        machine_busy = (busy1 - busy0) / max(1, total1 - total0) * cores
        ours = (_our_cpu_s() - self.ours_start) / elapsed if elapsed else 0.0
        return {"elapsed_s": elapsed, "machine_cores_busy": machine_busy, "our_cores_busy": ours}


def _machine_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _our_cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Profiler:
    """py-spy record on running processes, in the background (non-blocking: it never pauses them)."""

    def __init__(self, directory: Path, *, duration_s: int) -> None:
        self.directory = directory
        self.duration_s = duration_s
        self.running: list[tuple[subprocess.Popen, Path]] = []
        self.files: list[Path] = []

    def record(self, name: str, pid: int) -> None:
        py_spy = Path(sys.executable).with_name("py-spy")
        if self.duration_s <= 0 or not py_spy.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        output = self.directory / f"{name}.speedscope.json"
        args = [str(py_spy), "record", "--nonblocking", "--format", "speedscope", "--rate", "100",
                "--duration", str(self.duration_s), "--pid", str(pid), "--output", str(output)]  # fmt: skip
        log = open(self.directory / f"{name}.py-spy.log", "wb")  # noqa: SIM115 - the child keeps writing to it
        self.running.append((subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), output))

    async def wait(self) -> None:
        deadline = time.monotonic() + self.duration_s + 30
        for process, output in self.running:
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if process.poll() is None:
                process.kill()
                process.wait(10)
            if output.exists():
                self.files.append(output)
        self.running.clear()


class Databases:
    """Read-only SQL on the services' databases: SQLite files (embedded) or PostgreSQL schemas.

    Queries name tables as `{s}table`: the schema prefix on PostgreSQL, nothing on SQLite."""

    def __init__(self, *, sqlite_dir: Path | None = None, database_url: str | None = None) -> None:
        self.sqlite_dir, self.database_url = sqlite_dir, database_url
        self._connections: dict[str, object] = {}

    async def fetch(self, service: str, sql: str) -> list[tuple]:
        if self.sqlite_dir is not None:
            return await asyncio.to_thread(self._sqlite_fetch, service, sql.replace("{s}", ""))
        import asyncpg

        connection = self._connections.get(service)
        if connection is None:
            connection = self._connections[service] = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            return [tuple(row) for row in await connection.fetch(sql.replace("{s}", f"{service}."))]
        except asyncpg.UndefinedTableError:
            return []

    def _sqlite_fetch(self, service: str, sql: str) -> list[tuple]:
        path = self.sqlite_dir / f"{service}.sqlite3"
        if not path.exists():
            return []
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return connection.execute(sql).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise
        finally:
            connection.close()

    async def scalar(self, service: str, sql: str) -> int:
        rows = await self.fetch(service, sql)
        return rows[0][0] if rows and rows[0][0] is not None else 0

    async def close(self) -> None:
        for connection in self._connections.values():
            await connection.close()
        self._connections.clear()


@dataclass
class Platform:
    """A running VươnMình: where webhooks go, where KPIs are read, its processes and databases."""

    mode: str
    intake: VuonminhProcess
    analytics: VuonminhProcess
    processes: dict[str, VuonminhProcess]
    databases: Databases
    namespace: str = ""

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def peak_rss_mb(self) -> dict[str, float | None]:
        return {name: peak_rss_mb(p.process.pid) for name, p in self.processes.items()}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"VUONMINH_DIRECT_SECRET": SECRET, "VUONMINH_LOG_LEVEL": "WARNING", **(extra or {})}


async def start_embedded(workdir: Path, *, demo: bool = True) -> Platform:
    data_dir = workdir / "data"
    args = ["run", "--data-dir", str(data_dir)] + (["--demo", "--no-carrier-simulator"] if demo else [])
    run = VuonminhProcess(args, env=_env(), log_path=workdir / "run.log").start()
    platform = Platform("embedded", run, run, {"embedded": run}, Databases(sqlite_dir=data_dir))
    try:
        await run.wait_ready()
        if demo:
            await _wait_until_orders_know_the_catalog(platform.databases)
    except BaseException:
        platform.stop()
        raise
    return platform


async def start_kafka(workdir: Path, database_url: str, *, services: tuple[str, ...], demo: bool = True) -> Platform:
    """`vuonminh serve` per service, on a topic namespace of its own and the given database."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}."
    env = _env({"VUONMINH_KAFKA_NAMESPACE": namespace, "DATABASE_URL": database_url})
    processes = {
        name: VuonminhProcess(["serve", name], env=env, log_path=workdir / f"{name}.log").start() for name in services
    }
    platform = Platform(
        "kafka",
        processes["orders"],
        processes.get("analytics", processes["orders"]),
        processes,
        Databases(database_url=database_url),
        namespace,
    )
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        if demo:
            # Through catalog's API, then until orders has learnt it: an order sent earlier
            # would be rejected as an unknown SKU.
            async with httpx.AsyncClient(
                headers=operator_headers(), base_url=processes["catalog"].url, timeout=30
            ) as client:
                catalog = demo_catalog()
                for shop in catalog["provincial_shops"]:  # before the sellers that sell through them
                    (await client.post("/v1/provincial-shops", json=shop)).raise_for_status()
                for seller in catalog["sellers"]:
                    (await client.post("/v1/sellers", json=seller)).raise_for_status()
                for listing in demo_listings():
                    (await client.post("/v1/products", json=listing)).raise_for_status()
            await _wait_until_orders_know_the_catalog(platform.databases)
    except BaseException:
        platform.stop()
        raise
    return platform


async def _wait_until_orders_know_the_catalog(databases: Databases) -> None:
    async def known() -> bool:
        count = await databases.scalar("orders", "SELECT count(*) FROM {s}catalog_products")
        return count >= len(demo_listings())

    await eventually(known, timeout_s=90, interval_s=0.2)
