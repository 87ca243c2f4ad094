"""Dead letters: find, read and replay the records consumers parked on `<topic>.dlq`.

Works on both logs: Kafka (the namespace's `<topic>.dlq` topics) and the embedded local log
(beside a running `vuonminh run` too: it appends like a second producer).

A replay sends the parked record back to its original topic with its original key, value and
headers, the inbox's `dlq_*` headers dropped and `dlq_replayed_from` (`<dlq topic>:<partition>:
<offset>`) and `dlq_replayed_at` added. Every group reading that topic receives it again; those
that had applied the event skip it (their inbox knows its CloudEvents id), the one that failed
applies it now. Each replay also appends a marker record to the dead-letter topic (header
`dlq_replay_of`), so the dead-letter topic itself says what was replayed and when: listing shows
it, and replaying the same record again is skipped and reported unless forced.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from vuonminh.shared.events import Topic, dead_letter_topic
from vuonminh.shared.records import Headers, IncomingRecord, OutgoingRecord
from vuonminh.shared.timeutil import utc_now

REPLAY_OF = "dlq_replay_of"  # on a marker: "<partition>:<offset>" of the replayed dead letter
REPLAYED_FROM = "dlq_replayed_from"  # on a replayed record: "<dlq topic>:<partition>:<offset>"
REPLAYED_AT = "dlq_replayed_at"
SEND_CHUNK = 100
SCAN_STALL_S = 30.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

Progress = Callable[[int], None]  # told how many more items are done


class DeadLetterError(Exception):
    """A request the tool cannot carry out, with what to do instead."""


@dataclass(frozen=True)
class Replay:
    at: str  # when, from the marker record


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str  # without the namespace
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int
    replays: tuple[Replay, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", errors="replace")
        return None

    @property
    def original_topic(self) -> str:
        return self.header("dlq_original_topic") or self.dlq_topic.removesuffix(".dlq")

    @property
    def group(self) -> str | None:
        return self.header("dlq_consumer_group")

    @property
    def event_id(self) -> str | None:
        return self.header("ce_id")

    @property
    def event_type(self) -> str | None:
        return self.header("ce_type")

    @property
    def error(self) -> str | None:
        return self.header("dlq_error")

    @property
    def failed_at(self) -> datetime:
        stamped = self.header("dlq_failed_at")
        if stamped:
            try:
                return datetime.fromisoformat(stamped)
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    def replay_record(self, *, at: str) -> OutgoingRecord:
        kept = tuple((name, value) for name, value in self.headers if not name.startswith("dlq_"))
        return OutgoingRecord(
            topic=self.original_topic,
            key=self.key or b"",
            value=self.value or b"",
            headers=kept + ((REPLAYED_FROM, self.ref.encode()), (REPLAYED_AT, at.encode())),
        )

    def marker_record(self, *, at: str) -> OutgoingRecord:
        return OutgoingRecord(
            topic=self.dlq_topic,
            key=self.key or b"",
            value=b"",
            headers=(
                (REPLAY_OF, f"{self.partition}:{self.offset}".encode()),
                (REPLAYED_AT, at.encode()),
                ("dlq_replayed_to", self.original_topic.encode()),
            ),
        )

    def summary(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "original_topic": self.original_topic,
            "original_partition": _int_or_none(self.header("dlq_original_partition")),
            "original_offset": _int_or_none(self.header("dlq_original_offset")),
            "group": self.group,
            "failed_at": self.failed_at.isoformat(),
            "event_id": self.event_id,
            "event_type": self.event_type,
            "error": self.error,
            "replayed_at": [r.at for r in self.replays],
        }


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


@dataclass(frozen=True)
class DeadLetterFilter:
    topics: tuple[str, ...] = ()  # original topics
    group: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_id: str | None = None

    def is_empty(self) -> bool:
        return not (self.topics or self.group or self.since or self.until or self.event_id)

    def matches(self, dead_letter: DeadLetter) -> bool:
        if self.topics and dead_letter.original_topic not in self.topics:
            return False
        if self.group and dead_letter.group != self.group:
            return False
        if self.event_id and dead_letter.event_id != self.event_id:
            return False
        failed_at = dead_letter.failed_at
        if self.since and failed_at < self.since:
            return False
        return not (self.until and failed_at >= self.until)


def parse_topic(text: str) -> str:
    """An original topic from `orders.orders` or `orders.orders.dlq`; unknown names are refused."""
    topic = text.removesuffix(".dlq")
    known = [t.value for t in Topic]
    if topic not in known:
        raise DeadLetterError(f"unknown topic {text!r}; the topics are {', '.join(known)}")
    return topic


def parse_group(text: str) -> str:
    """A consumer group; a bare service name means its group (`logistics` -> `vuonminh.logistics`)."""
    return text if "." in text else f"vuonminh.{text}"


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time with its UTC offset, or a duration ago: 90s, 30m, 2h, 7d."""
    duration = _DURATION.match(text.strip())
    if duration:
        amount, unit = duration.groups()
        return (now or utc_now()) - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise DeadLetterError(
            f"{text!r} is neither a time (2026-11-20T09:00:00+07:00) nor a duration ago (30m, 2h, 7d)"
        ) from error
    if moment.tzinfo is None:
        raise DeadLetterError(f"{text!r} has no UTC offset: add one, e.g. {text}+07:00 or {text}Z")
    return moment


def parse_ref(text: str) -> tuple[str, int, int]:
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() or not parts[0].endswith(".dlq"):
        raise DeadLetterError(
            f"{text!r} is not a dead-letter reference: expected <topic>.dlq:<partition>:<offset>, "
            "as `vuonminh dlq list` prints them"
        )
    return parts[0], int(parts[1]), int(parts[2])


class DeadLetterLog(Protocol):
    """Where the dead-letter topics are: Kafka or the local log."""

    description: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def scan(self, topics: Sequence[str], progress: Callable[[int], Progress]) -> list[IncomingRecord]:
        """Every record of these topics (unprefixed names); `progress(total)` gives a ticker."""

    async def send(self, records: Sequence[OutgoingRecord]) -> None: ...


@dataclass
class ReplayResult:
    replayed: list[DeadLetter] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)

    def by_topic(self) -> dict[str, int]:
        return dict(Counter(d.original_topic for d in self.replayed))


class DeadLetters:
    def __init__(self, log: DeadLetterLog) -> None:
        self.log = log

    async def load(
        self, topics: Iterable[str] = (), *, progress: Callable[[int], Progress] = lambda _total: lambda _n: None
    ) -> list[DeadLetter]:
        """Every dead letter of these original topics (all when empty), with its replays."""
        originals = list(topics) or [t.value for t in Topic]
        dlq_topics = [dead_letter_topic(t) for t in originals]
        records = await self.log.scan(dlq_topics, progress)
        replays: dict[tuple[str, str], list[Replay]] = {}
        parked: list[DeadLetter] = []
        for record in records:
            replay_of = record.header(REPLAY_OF)
            if replay_of is not None:
                replays.setdefault((record.topic, replay_of), []).append(Replay(at=record.header(REPLAYED_AT) or ""))
                continue
            parked.append(
                DeadLetter(
                    dlq_topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                    timestamp_ms=record.timestamp_ms,
                )
            )
        parked.sort(key=lambda d: (d.failed_at, d.dlq_topic, d.partition, d.offset))
        return [replace(d, replays=tuple(replays.get((d.dlq_topic, f"{d.partition}:{d.offset}"), ()))) for d in parked]

    async def find(self, refs: Sequence[str]) -> list[DeadLetter]:
        """The dead letters named by reference; an unknown reference is an error."""
        wanted = [parse_ref(ref) for ref in refs]
        originals = {t.removesuffix(".dlq") for t, _p, _o in wanted}
        loaded = {(d.dlq_topic, d.partition, d.offset): d for d in await self.load(originals)}
        missing = [ref for ref, key in zip(refs, wanted, strict=True) if key not in loaded]
        if missing:
            raise DeadLetterError(
                f"no dead letter {', '.join(missing)} in {self.log.description} "
                "(a marker of a replay is not one; see `vuonminh dlq list`)"
            )
        return [loaded[key] for key in wanted]

    async def replay(
        self, dead_letters: Sequence[DeadLetter], *, force: bool = False, progress: Progress = lambda _n: None
    ) -> ReplayResult:
        result = ReplayResult()
        todo = []
        for dead_letter in dead_letters:
            if dead_letter.replays and not force:
                result.already_replayed.append(dead_letter)
            else:
                todo.append(dead_letter)
        for start in range(0, len(todo), SEND_CHUNK):
            chunk = todo[start : start + SEND_CHUNK]
            at = utc_now().isoformat()
            # Record first, marker after: a crash in between leaves a record replayed without
            # its marker, and replaying it again is harmless (the inbox skips what it applied).
            await self.log.send([d.replay_record(at=at) for d in chunk])
            await self.log.send([d.marker_record(at=at) for d in chunk])
            result.replayed.extend(chunk)
            progress(len(chunk))
        return result


# -- the two logs ---------------------------------------------------------------------------------
class KafkaDeadLetterLog:
    def __init__(self, bootstrap_servers: str, *, namespace: str = "") -> None:
        self.bootstrap_servers = bootstrap_servers
        self.namespace = namespace
        self.description = f"Kafka at {bootstrap_servers}" + (f" (namespace {namespace!r})" if namespace else "")
        self._producer = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def scan(self, topics: Sequence[str], progress: Callable[[int], Progress]) -> list[IncomingRecord]:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        from vuonminh.shared.transport.kafka import incoming_record

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id="vuonminh-dlq")
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            names = [self.namespace + t for t in topics if self.namespace + t in existing]
            metadata = await admin.describe_topics(names) if names else []
        finally:
            await admin.close()
        partitions = [
            TopicPartition(topic["topic"], p["partition"])
            for topic in metadata
            for p in sorted(topic["partitions"], key=lambda p: p["partition"])
        ]
        if not partitions:
            return []
        # No group: reading dead letters must not commit offsets anywhere or join any group.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            # Not the default "latest": a reset racing the seek below must not skip records.
            auto_offset_reset="earliest",
            client_id="vuonminh-dlq",
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            first = await consumer.beginning_offsets(partitions)
            end = await consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, first[tp])
            tick = progress(sum(end[tp] - first[tp] for tp in partitions))
            # Done with a partition once a record at or past its end offset (taken above) was
            # returned; the consumer's position() can run ahead of what getmany returned.
            remaining = {tp for tp in partitions if end[tp] > first[tp]}
            records: list[IncomingRecord] = []
            stalled_since = time.monotonic()
            while remaining:
                if time.monotonic() - stalled_since > SCAN_STALL_S:
                    raise DeadLetterError(
                        f"reading {', '.join(sorted({tp.topic for tp in remaining}))} made no progress for "
                        f"{SCAN_STALL_S:.0f} s: is the broker reachable?"
                    )
                batches = await consumer.getmany(*remaining, timeout_ms=1000)
                if batches:
                    stalled_since = time.monotonic()
                for tp, messages in batches.items():
                    kept = [m for m in messages if m.offset < end[tp]]
                    if messages and messages[-1].offset + 1 >= end[tp]:
                        remaining.discard(tp)
                    records.extend(incoming_record(m, self.namespace) for m in kept)
                    tick(len(kept))
            return records
        finally:
            await consumer.stop()

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        if self._producer is None:
            from vuonminh.shared.transport.kafka import KafkaTransport

            producer = KafkaTransport(self.bootstrap_servers, namespace=self.namespace).producer(
                client_id="vuonminh-dlq"
            )
            await producer.start()
            self._producer = producer
        await self._producer.send(records)


class LocalDeadLetterLog:
    def __init__(self, path: Path) -> None:
        from vuonminh.shared.transport.local import LocalLog

        self.path = path
        self.description = f"the local log {path}"
        self._log = LocalLog(path, exclusive=False)  # a running `vuonminh run` may hold the lock

    async def open(self) -> None:
        if not self.path.exists():
            raise DeadLetterError(
                f"there is no local log at {self.path}: give the data dir of `vuonminh run` "
                "(--data-dir or VUONMINH_DATA_DIR), or set KAFKA_BOOTSTRAP_SERVERS for Kafka"
            )
        await self._log.open()

    async def close(self) -> None:
        await self._log.close()

    async def scan(self, topics: Sequence[str], progress: Callable[[int], Progress]) -> list[IncomingRecord]:
        held = await self._log.topics()
        wanted = [t for t in topics if t in held]
        tick = progress(sum(held[t][1] - held[t][0] + 1 for t in wanted))
        records: list[IncomingRecord] = []
        for topic in wanted:
            offset = held[topic][0]
            while True:
                page = await self._log.read(topic, offset, 500)
                records.extend(page)
                tick(len(page))
                if len(page) < 500:
                    break
                offset = page[-1].offset + 1
        return records

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        await self._log.append(records)
