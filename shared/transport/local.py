"""The embedded stand-in for Kafka: a durable append-only log in one SQLite file.

Same contract as Kafka for our purposes: records are durable when `send` returns (WAL with
synchronous=FULL, so a kill -9 or power cut after the reply loses nothing), ordered per topic
(one partition each), read by consumer groups that commit their own offsets, and delivered at
least once. Concurrent appends are group-committed: one transaction and one fsync serve every
append that arrived meanwhile, as a Kafka producer batches within linger.ms.
It serves one process (the all-in-one `vuonminh run`): a lock file keeps a second one out, and
each consumer group has a single member. Operator tools (`vuonminh dlq`) may append beside it:
offsets are taken from the file inside each write transaction, never from a cache.

Retention (shared/retention.py) deletes what every group has read; the newest record of each
topic is always kept, as it carries the topic's next offset. A size cap (max_bytes, from
VUONMINH_LOCAL_LOG_MAX_MB) or a full disk makes appends fail with LogFull, which names the
cause, while group commits and deletions, which need no new pages, still go through.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vuonminh.shared.aio import wait_for_event
from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport.base import LogFull, TopicPartition

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
_DELETE_CHUNK = 5000  # records per deleting transaction: appends never wait long behind retention


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


def _connect(path: Path, max_bytes: int | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    # Without a limit the WAL file keeps the size of its largest burst; this truncates it back.
    conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    if max_bytes is not None:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        # Never below the pages the file has: SQLite would keep its current size anyway.
        conn.execute(f"PRAGMA max_page_count={max(1, max_bytes // page_size)}")
    return conn


def _is_full(error: BaseException) -> bool:
    return isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


class LocalLog:
    def __init__(self, path: Path, *, max_bytes: int | None = None, exclusive: bool = True) -> None:
        self.path = path
        self.max_bytes = max_bytes
        # exclusive=False is for operator tools beside a running process: no lock file taken.
        self._exclusive = exclusive
        self._lock_file: IO[str] | None = None
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="locallog-write")
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="locallog-read")
        self._writes: asyncio.Queue[_Append | _Commit] = asyncio.Queue()
        self._appended = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._exclusive:
            self._lock_file = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 - held while open
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise DataDirInUse(f"{self.path.parent} is used by another running process") from error
        loop = asyncio.get_running_loop()
        self._write_conn = await loop.run_in_executor(self._writer_thread, _connect, self.path, self.max_bytes)
        self._read_conn = await loop.run_in_executor(self._reader_thread, _connect, self.path)
        await loop.run_in_executor(self._writer_thread, self._write_conn.executescript, _SCHEMA)
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
            except LogFull as full:
                if len(batch) == 1:
                    self._settle(batch, full)
                    continue
                # One transaction failed for all: retried one by one, offset commits (which
                # need no new page) still land, so consumers move on and retention frees space.
                for op in batch:
                    try:
                        await loop.run_in_executor(self._writer_thread, self._write_batch, [op])
                    except Exception as error:
                        self._settle([op], error)
                    else:
                        self._settle([op], None)
                self._signal_appended()
                continue
            except Exception as error:  # every waiter hears of it; nothing was committed
                self._settle(batch, error)
                continue
            self._settle(batch, None)
            self._signal_appended()

    @staticmethod
    def _settle(ops: Iterable[_Append | _Commit], error: BaseException | None) -> None:
        for op in ops:
            if op.done.done():
                continue
            if error is None:
                op.done.set_result(None)
            else:
                op.done.set_exception(error)

    def _signal_appended(self) -> None:
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()

    def _write_batch(self, batch: list[_Append | _Commit]) -> None:
        conn = self._write_conn
        now_ms = int(utc_now().timestamp() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read under the write lock: another writer (an operator tool) may have appended.
            next_offset = {
                topic: self._next_offset_in_file(topic)
                for topic in {r.topic for op in batch if isinstance(op, _Append) for r in op.records}
            }
            for op in batch:
                if isinstance(op, _Append):
                    rows = []
                    for r in op.records:
                        offset = next_offset[r.topic]
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
        except BaseException as error:
            # SQLite rolls back by itself on some errors (SQLITE_FULL among them): a ROLLBACK
            # then fails with "no transaction is active" and would hide the real error.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:
                    error.add_note(f"and the rollback failed: {rollback_error!r}")
            if _is_full(error):
                limit = "the disk"
                if self.max_bytes:
                    limit = f"VUONMINH_LOCAL_LOG_MAX_MB={self.max_bytes / 2**20:g} or the disk"
                raise LogFull(
                    f"the local log {self.path} is full ({limit}): {error}. Retention frees space once "
                    "the consumers have committed; or free disk space, or raise the cap and restart"
                ) from error
            raise

    def _next_offset_in_file(self, topic: str) -> int:
        last = self._write_conn.execute('SELECT MAX("offset") FROM records WHERE topic = ?', (topic,)).fetchone()[0]
        return 0 if last is None else last + 1

    # -- retention --------------------------------------------------------------------------------
    async def delete_records(self, topic: str, *, below_offset: int | None = None, before_ms: int | None = None) -> int:
        """Deletes the topic's records under `below_offset` and/or older than `before_ms`, in
        short transactions, always keeping the newest record (it carries the next offset)."""
        loop = asyncio.get_running_loop()
        deleted = 0
        while True:
            count = await loop.run_in_executor(self._writer_thread, self._delete_chunk, topic, below_offset, before_ms)
            deleted += count
            if count < _DELETE_CHUNK:
                return deleted

    def _delete_chunk(self, topic: str, below_offset: int | None, before_ms: int | None) -> int:
        conn = self._write_conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = conn.execute('SELECT MAX("offset") FROM records WHERE topic = ?', (topic,)).fetchone()[0]
            if last is None:
                conn.execute("COMMIT")
                return 0
            below = last if below_offset is None else min(below_offset, last)
            where, args = 'topic = ? AND "offset" < ?', [topic, below]
            if before_ms is not None:
                where, args = where + " AND timestamp_ms < ?", [*args, before_ms]
            deleted = conn.execute(
                'DELETE FROM records WHERE topic = ? AND "offset" IN '
                f'(SELECT "offset" FROM records WHERE {where} ORDER BY "offset" LIMIT ?)',
                (topic, *args, _DELETE_CHUNK),
            ).rowcount
            conn.execute("COMMIT")
            return deleted
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def checkpoint(self) -> None:
        """Moves the WAL into the file and truncates it, when no reader is in the way."""
        await asyncio.get_running_loop().run_in_executor(
            self._writer_thread, lambda: self._write_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        )

    def size_bytes(self) -> int:
        """The log's size on disk: the file and its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists())

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

    async def topics(self) -> dict[str, tuple[int, int]]:
        """Each topic in the file with the first and last offset it still holds."""

        def query() -> list[tuple]:
            return self._read_conn.execute(
                'SELECT topic, MIN("offset"), MAX("offset") FROM records GROUP BY topic'
            ).fetchall()

        rows = await asyncio.get_running_loop().run_in_executor(self._reader_thread, query)
        return {topic: (first, last) for topic, first, last in rows}

    async def group_offsets(self) -> dict[str, dict[str, int]]:
        """topic -> {group: next offset to read}, for every group that has committed."""

        def query() -> list[tuple]:
            return self._read_conn.execute("SELECT topic, group_id, next_offset FROM group_offsets").fetchall()

        committed: dict[str, dict[str, int]] = {}
        for topic, group, next_offset in await asyncio.get_running_loop().run_in_executor(self._reader_thread, query):
            committed.setdefault(topic, {})[group] = next_offset
        return committed


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

    async def lag(self, *, exclude: Collection[TopicPartition] = ()) -> int:
        # Reads go straight to the file: nothing can be left unfetched behind a dead connection.
        return 0

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

    def __init__(self, path: Path, *, max_bytes: int | None = None) -> None:
        self.log = LocalLog(path, max_bytes=max_bytes)
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
