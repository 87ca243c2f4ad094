"""The delivery guarantees of the shared kit, on the embedded log and SQLite."""

import asyncio
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import OperationalError

from vuonminh.shared import db
from vuonminh.shared.events import Envelope, SellerRegistered, dead_letter_topic
from vuonminh.shared.inbox import BatchHandler, ConsumerRunner, processed_events_table
from vuonminh.shared.outbox import RELAY_BATCH, OutboxRelay, outbox_table, write_to_outbox
from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.shared.unit_of_work import UnitOfWork
from vuonminh.wiring.testing import eventually

TOPIC = "catalog.sellers"


def _event(seller_id: str = "s1") -> Envelope:
    payload = SellerRegistered(
        seller_id=seller_id, name="Hộ A", kind="household", province_code="12", ward_code="03390"
    )
    return Envelope.new(payload, source="/test")


class Harness:
    """One service's database (effects + inbox + outbox) and a consumer on the local log."""

    def __init__(self, tmp_path, handler=None, max_attempts=3, hold_s=30.0):
        self.metadata = MetaData()
        self.effects = Table(
            "effects", self.metadata, Column("n", Integer, primary_key=True), Column("event_id", String)
        )
        self.processed = processed_events_table(self.metadata)
        self.outbox = outbox_table(self.metadata)
        self.engine = db.sqlite_engine(tmp_path / "svc.sqlite3")
        self.sessions = db.session_factory(self.engine)
        self.transport = LocalTransport(tmp_path / "log.sqlite3")
        self.producer = self.transport.producer(client_id="test")
        self.handler = handler or self.record_effect
        self.runner = ConsumerRunner(
            group_id="test-group",
            topics=[TOPIC],
            handlers={SellerRegistered.TYPE: self.handler},
            consumer_factory=lambda: self.transport.consumer(group_id="test-group", topics=[TOPIC]),
            unit_of_work=self.unit_of_work,
            processed_table=self.processed,
            dead_letter_producer=self.producer,
            max_attempts=max_attempts,
            hold_s=hold_s,
        )

    async def record_effect(self, uow: UnitOfWork, envelope: Envelope) -> None:
        await uow.session.exec(insert(self.effects).values(event_id=envelope.id))

    @asynccontextmanager
    async def unit_of_work(self, caused_by=None):
        async with self.sessions() as session, session.begin():
            uow = UnitOfWork(session, service="test", caused_by=caused_by)
            yield uow
            await write_to_outbox(session, self.outbox, uow.staged)

    async def __aenter__(self):
        await db.create_tables(self.engine, self.metadata)
        await self.transport.ensure_topics([TOPIC])
        return self

    async def __aexit__(self, *exc):
        await self.transport.close()
        await self.engine.dispose()

    async def effect_count(self) -> int:
        async with self.sessions() as session:
            return await session.scalar(select(func.count()).select_from(self.effects))

    async def records(self, topic: str):
        consumer = self.transport.consumer(group_id=f"reader-{topic}", topics=[topic])
        await consumer.start()
        return await consumer.poll(max_records=1000, timeout_s=0.05)

    async def consume_all(self, expected_offsets: int) -> None:
        task = asyncio.create_task(self.runner.run())
        try:
            for _ in range(500):
                committed = await self.transport.log.committed("test-group", TOPIC)
                if committed >= expected_offsets:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"consumer committed only {committed} of {expected_offsets}")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_redelivered_event_has_its_effect_once(tmp_path):
    async with Harness(tmp_path) as h:
        event = _event()
        # The same event three times: a relay that crashed before marking, and a retry.
        await h.producer.send([event.to_record()] * 3 + [_event("s2").to_record()])

        await h.consume_all(expected_offsets=4)

        assert await h.effect_count() == 2


async def test_a_failing_handler_parks_the_record_on_the_dead_letter_topic_and_moves_on(tmp_path):
    attempts = []

    async def fail_for_s1(uow, envelope):
        if envelope.data.seller_id == "s1":
            attempts.append(envelope.id)
            raise ValueError("cannot apply s1")
        await h.record_effect(uow, envelope)

    async with Harness(tmp_path, handler=fail_for_s1, max_attempts=3) as h:
        await h.producer.send([_event("s1").to_record(), _event("s2").to_record()])

        await h.consume_all(expected_offsets=2)

        parked = await h.records(dead_letter_topic(TOPIC))
        assert len(attempts) == 1 + 3  # once in the batch's transaction, then max_attempts on its own
        assert await h.effect_count() == 1  # s2 went through; s1's failed attempts left nothing
        assert len(parked) == 1
        assert parked[0].header("dlq_original_offset") == "0"
        assert "cannot apply s1" in parked[0].header("dlq_error")
        assert parked[0].header("ce_type") == SellerRegistered.TYPE


async def test_a_batch_handler_gets_each_run_of_new_events_at_once_and_applies_each_once(tmp_path):
    calls: list[list[str]] = []

    async def record_many(uow, envelopes):
        calls.append([e.data.seller_id for e in envelopes])
        await uow.session.exec(insert(h.effects).values([{"event_id": e.id} for e in envelopes]))

    async with Harness(tmp_path, handler=BatchHandler(record_many)) as h:
        events = [_event(f"s{i}") for i in range(5)]
        # A redelivery inside the poll (a relay that resent before marking) is not handed over twice.
        await h.producer.send([e.to_record() for e in events] + [events[1].to_record()])

        await h.consume_all(expected_offsets=6)

        assert await h.effect_count() == 5
        assert sorted(sum(calls, [])) == [f"s{i}" for i in range(5)]
        assert len(calls) < 5, f"one call per event, not per run: {calls}"


async def test_a_batch_handler_failing_on_one_event_falls_back_to_one_at_a_time(tmp_path):
    async def record_unless_s2(uow, envelopes):
        if any(e.data.seller_id == "s2" for e in envelopes):
            raise ValueError("s2 cannot be applied")
        await uow.session.exec(insert(h.effects).values([{"event_id": e.id} for e in envelopes]))

    async with Harness(tmp_path, handler=BatchHandler(record_unless_s2), max_attempts=2) as h:
        await h.producer.send([_event(f"s{i}").to_record() for i in range(4)])

        await h.consume_all(expected_offsets=4)

        # The batch rolled back as a whole, then s0, s1 and s3 were applied alone and s2 parked.
        assert await h.effect_count() == 3
        parked = await h.records(dead_letter_topic(TOPIC))
        assert [Envelope.from_record(r).data.seller_id for r in parked] == ["s2"]


async def test_a_poison_record_is_dead_lettered_without_retries(tmp_path):
    async with Harness(tmp_path) as h:
        garbage = OutgoingRecord(topic=TOPIC, key=b"x", value=b"not json", headers=())
        await h.producer.send([garbage, _event("s2").to_record()])

        await h.consume_all(expected_offsets=2)

        parked = await h.records(dead_letter_topic(TOPIC))
        assert [r.value for r in parked] == [b"not json"]
        assert "not a CloudEvent" in parked[0].header("dlq_error")
        assert await h.effect_count() == 1


async def test_transient_database_errors_are_retried_not_dead_lettered(tmp_path):
    calls = []

    async def flaky(uow, envelope):
        calls.append(1)
        if len(calls) <= 4:  # more failures than max_attempts: still no dead letter
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        await h.record_effect(uow, envelope)

    async with Harness(tmp_path, handler=flaky, max_attempts=2) as h:
        await h.producer.send([_event().to_record()])

        await h.consume_all(expected_offsets=1)

        assert await h.effect_count() == 1
        assert await h.records(dead_letter_topic(TOPIC)) == []


async def test_errors_in_the_record_are_dead_lettered_even_with_a_database_error_before(tmp_path):
    calls = []

    async def locked_then_broken(uow, envelope):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        raise ValueError("line total over the limit")

    async with Harness(tmp_path, handler=locked_then_broken, max_attempts=2) as h:
        await h.producer.send([_event().to_record()])

        await h.consume_all(expected_offsets=1)

        assert len(calls) == 3  # one wait for the database, then two tries of the broken record
        assert len(await h.records(dead_letter_topic(TOPIC))) == 1


async def test_an_event_type_newer_than_the_code_holds_its_partition_until_the_code_knows_it(tmp_path, monkeypatch):
    from vuonminh.shared.events import envelope as envelope_module

    newer = OutgoingRecord(
        topic=TOPIC,
        key=b"s1",
        value=b'{"seller_id": "s1"}',
        headers=(
            ("ce_specversion", b"1.0"),
            ("ce_id", b"newer-1"),
            ("ce_type", b"vuonminh.catalog.seller_registered.v9"),
            ("ce_source", b"/vuonminh/catalog"),
            ("ce_time", b"2026-11-23T00:00:00+00:00"),
        ),
    )
    async with Harness(tmp_path, hold_s=0.2) as h:
        await h.producer.send([_event("s0").to_record(), newer, _event("s2").to_record()])
        task = asyncio.create_task(h.runner.run())
        try:

            async def held():
                return h.runner.held and await h.transport.log.committed("test-group", TOPIC) == 1

            await eventually(held)
            await asyncio.sleep(0.5)  # several hold periods: still held, nothing behind it applied
            assert await h.effect_count() == 1
            assert await h.transport.log.committed("test-group", TOPIC) == 1
            assert await h.records(dead_letter_topic(TOPIC)) == []

            # The rolling deploy completes: the code now knows v9 (this consumer has no handler for it).
            known = envelope_module.payload_class_for
            monkeypatch.setattr(
                envelope_module,
                "payload_class_for",
                lambda t: SellerRegistered if t.endswith(".v9") else known(t),
            )

            async def drained():
                return await h.transport.log.committed("test-group", TOPIC) == 3

            await eventually(drained)
            assert await h.effect_count() == 2
            assert not h.runner.held
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_outbox_rows_commit_with_the_business_change_or_not_at_all(tmp_path):
    async with Harness(tmp_path) as h:
        with pytest.raises(RuntimeError):
            async with h.unit_of_work() as uow:
                uow.publish(_event().data)
                await uow.session.exec(insert(h.effects).values(event_id="x"))
                raise RuntimeError("the command failed after staging its event")
        async with h.unit_of_work() as uow:
            uow.publish(_event("s9").data)

        async with h.sessions() as session:
            rows = (await session.exec(select(h.outbox.c.message_key))).scalars().all()
        assert rows == ["s9"]
        assert await h.effect_count() == 0


async def test_relay_sends_in_commit_order_and_marks_rows(tmp_path):
    async with Harness(tmp_path) as h:
        total = RELAY_BATCH + 20  # more than one relay batch
        for n in range(total):
            async with h.unit_of_work() as uow:
                uow.publish(_event(f"s{n:03d}").data)
        relay = OutboxRelay(service="test", table=h.outbox, engine=h.engine, sessions=h.sessions, producer=h.producer)

        sent = await relay.publish_batch() + await relay.publish_batch() + await relay.publish_batch()

        records = await h.records(TOPIC)
        assert sent == total
        assert [r.key.decode() for r in records] == [f"s{n:03d}" for n in range(total)]
        assert await relay.publish_batch() == 0  # everything is marked published


class RefusingProducer:
    """A log that refuses one record for good (as Kafka refuses a record over max.message.bytes)."""

    def __init__(self, refused_id: str) -> None:
        self.refused_id = refused_id
        self.sent: list[OutgoingRecord] = []

    async def send(self, records) -> None:
        for record in records:
            if dict(record.headers)["ce_id"].decode() == self.refused_id:
                raise ValueError("MessageSizeTooLargeError: the record is larger than the broker accepts")
        self.sent.extend(records)


async def test_a_row_the_log_refuses_for_good_is_parked_and_does_not_block_the_rows_behind_it(tmp_path):
    async with Harness(tmp_path) as h:
        events = [_event(f"s{n}") for n in range(4)]
        async with h.unit_of_work() as uow:
            uow.staged.extend(events)
        producer = RefusingProducer(refused_id=events[1].id)
        relay = OutboxRelay(service="test", table=h.outbox, engine=h.engine, sessions=h.sessions, producer=producer)

        for _pass in range(3):  # the refused row is tried MAX_SEND_ATTEMPTS times, the others go at once
            await relay.publish_batch()

        sent_ids = [dict(r.headers)["ce_id"].decode() for r in producer.sent]
        assert sent_ids == [events[0].id, events[2].id, events[3].id]
        async with h.sessions() as session:
            rows = {
                row.event_id: row
                for row in (
                    await session.exec(select(h.outbox.c.event_id, h.outbox.c.parked_at, h.outbox.c.last_error))
                )
            }
        assert rows[events[1].id].parked_at is not None
        assert "MessageSizeTooLarge" in rows[events[1].id].last_error
        assert all(rows[e.id].parked_at is None for e in (events[0], events[2], events[3]))
        assert await relay.publish_batch() == 0  # nothing left: the parked row is set aside
