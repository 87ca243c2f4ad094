"""The embedded stand-in for Kafka: a durable append-only log in one SQLite file.

Same contract as Kafka for our purposes: records are durable when `send` returns (WAL with
synchronous=FULL, so a kill -9 or power cut after the reply loses nothing), ordered per topic
(one partition each), read by consumer groups that commit their own offsets, and delivered at
least once. Concurrent appends are group-committed: one transaction and one fsync serve every
append that arrived meanwhile, as a Kafka producer batches within linger.ms.
It serves one process (the all-in-one `vuonminh run`): a lock file keeps a second one out, and
each consumer group has a single member.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vuonminh.shared.aio import wait_for_event
from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport.base import TopicPartition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    "offset" INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic)
) WITHOUT ROWID;
"""
_MAX_GROUP_COMMIT = 2000


class DataDirInUse(RuntimeError):
    pass


@dataclass(slots=True)
class _Append:
    records: Sequence[OutgoingRecord]
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Commit:
    group_id: str
    positions: dict[TopicPartition, int]
    done: asyncio.Future[None]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class LocalLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: IO[str] | None = None
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="locallog-write")
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="locallog-read")
        self._writes: asyncio.Queue[_Append | _Commit] = asyncio.Queue()
        self._next_offset: dict[str, int] = {}
        self._appended = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise DataDirInUse(f"{self.path.parent} is used by another running process") from error
        loop = asyncio.get_running_loop()
        self._write_conn = await loop.run_in_executor(self._writer_thread, _connect, self.path)
        self._read_conn = await loop.run_in_executor(self._reader_thread, _connect, self.path)
        await loop.run_in_executor(self._writer_thread, self._write_conn.executescript, _SCHEMA)
        rows = await loop.run_in_executor(
            self._writer_thread,
            lambda: self._write_conn.execute('SELECT topic, MAX("offset") FROM records GROUP BY topic').fetchall(),
        )
        self._next_offset = {topic: last + 1 for topic, last in rows}
        self._writer_task = asyncio.create_task(self._write_loop(), name="locallog-writer")

    async def close(self) -> None:
        if self._writer_task:
            self._writer_task.cancel()
            await asyncio.gather(self._writer_task, return_exceptions=True)
        for executor, conn_name in ((self._writer_thread, "_write_conn"), (self._reader_thread, "_read_conn")):
            conn = getattr(self, conn_name, None)
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)
        if self._lock_file:
            self._lock_file.close()

    def check_writer(self) -> None:
        if self._writer_task is None or self._writer_task.done():
            raise ConnectionError(f"the local log {self.path} is not open")

    # -- writes (group-committed) --------------------------------------------------------------
    async def append(self, records: Sequence[OutgoingRecord]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._writes.put(_Append(records, done))
        await done

    async def commit(self, group_id: str, positions: dict[TopicPartition, int]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._writes.put(_Commit(group_id, positions, done))
        await done

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._writes.get()]
            while len(batch) < _MAX_GROUP_COMMIT and not self._writes.empty():
                batch.append(self._writes.get_nowait())
            try:
                await loop.run_in_executor(self._writer_thread, self._write_batch, batch)
            except Exception as error:  # every waiter hears of it; nothing was committed
                for op in batch:
                    if not op.done.done():
                        op.done.set_exception(error)
                continue
            for op in batch:
                if not op.done.done():
                    op.done.set_result(None)
            appended, self._appended = self._appended, asyncio.Event()
            appended.set()

    def _write_batch(self, batch: list[_Append | _Commit]) -> None:
        conn = self._write_conn
        next_offset = dict(self._next_offset)
        now_ms = int(utc_now().timestamp() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                if isinstance(op, _Append):
                    rows = []
                    for r in op.records:
                        offset = next_offset.get(r.topic, 0)
                        next_offset[r.topic] = offset + 1
                        headers = json.dumps([[k, v.decode("latin-1")] for k, v in r.headers])
                        rows.append((r.topic, offset, r.key, r.value, headers, now_ms))
                    conn.executemany(
                        'INSERT INTO records (topic, "offset", key, value, headers, timestamp_ms) '
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                else:
                    conn.executemany(
                        "INSERT INTO group_offsets (group_id, topic, next_offset) VALUES (?, ?, ?) "
                        "ON CONFLICT (group_id, topic) DO UPDATE SET next_offset = excluded.next_offset",
                        [(op.group_id, topic, offset) for (topic, _p), offset in op.positions.items()],
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._next_offset = next_offset

    # -- reads ------------------------------------------------------------------------------------
    def appended_signal(self) -> asyncio.Event:
        """Set at the next successful append; take it before reading to not miss one."""
        return self._appended

    async def read(self, topic: str, from_offset: int, limit: int) -> list[IncomingRecord]:
        def query() -> list[tuple]:
            return self._read_conn.execute(
                'SELECT "offset", key, value, headers, timestamp_ms FROM records '
                'WHERE topic = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (topic, from_offset, limit),
            ).fetchall()

        rows = await asyncio.get_running_loop().run_in_executor(self._reader_thread, query)
        return [
            IncomingRecord(
                topic=topic,
                partition=0,
                offset=offset,
                key=key,
                value=value,
                headers=tuple((k, v.encode("latin-1")) for k, v in json.loads(headers)),
                timestamp_ms=ts,
            )
            for offset, key, value, headers, ts in rows
        ]

    async def committed(self, group_id: str, topic: str) -> int:
        def query() -> int:
            row = self._read_conn.execute(
                "SELECT next_offset FROM group_offsets WHERE group_id = ? AND topic = ?", (group_id, topic)
            ).fetchone()
            return row[0] if row else 0

        return await asyncio.get_running_loop().run_in_executor(self._reader_thread, query)


class LocalProducer:
    def __init__(self, log: LocalLog) -> None:
        self._log = log

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        if records:
            await self._log.append(records)

    async def check(self) -> None:
        self._log.check_writer()


class LocalConsumer:
    def __init__(self, log: LocalLog, group_id: str, topics: Sequence[str]) -> None:
        self._log = log
        self._group_id = group_id
        self._topics = list(topics)
        self._position: dict[str, int] = {}
        self._paused: set[str] = set()
        self._started = False

    async def start(self) -> None:
        # Like a Kafka consumer joining its group: resume from the committed offsets.
        self._position = {t: await self._log.committed(self._group_id, t) for t in self._topics}
        self._started = True

    async def stop(self) -> None:
        self._started = False

    async def poll(self, *, max_records: int, timeout_s: float) -> list[IncomingRecord]:
        signal = self._log.appended_signal()
        records = await self._fetch(max_records)
        if not records:
            if not await wait_for_event(signal, timeout_s):
                return []
            records = await self._fetch(max_records)
        return records

    async def _fetch(self, max_records: int) -> list[IncomingRecord]:
        fetched: list[IncomingRecord] = []
        for topic in self._topics:
            if len(fetched) >= max_records:
                break
            if topic in self._paused:
                continue
            batch = await self._log.read(topic, self._position[topic], max_records - len(fetched))
            if batch:
                self._position[topic] = batch[-1].offset + 1
                fetched.extend(batch)
        return fetched

    async def commit(self, positions: dict[TopicPartition, int]) -> bool:
        await self._log.commit(self._group_id, positions)
        return True

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._position[partition[0]] = offset

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self._paused.update(topic for topic, _ in partitions)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self._paused.difference_update(topic for topic, _ in partitions)

    def is_assigned(self) -> bool:
        return self._started


class LocalTransport:
    name = "local"

    def __init__(self, path: Path) -> None:
        self.log = LocalLog(path)
        self._opened = False

    async def open(self) -> None:
        if not self._opened:
            await self.log.open()
            self._opened = True

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        await self.open()  # topics exist implicitly: the first append creates one

    def producer(self, *, client_id: str) -> LocalProducer:
        return LocalProducer(self.log)

    def consumer(self, *, group_id: str, topics: Sequence[str]) -> LocalConsumer:
        return LocalConsumer(self.log, group_id, topics)

    async def close(self) -> None:
        if self._opened:
            await self.log.close()
            self._opened = False
