"""On PostgreSQL the relay sends each aggregate's events in the order their transactions committed."""

import asyncio

import pytest
from sqlalchemy import MetaData

from vuonminh.shared import db
from vuonminh.shared.events import Envelope, SellerRegistered
from vuonminh.shared.outbox import OutboxRelay, outbox_table, write_to_outbox

pytestmark = pytest.mark.integration


class CapturingProducer:
    def __init__(self) -> None:
        self.sent = []

    async def send(self, records) -> None:
        self.sent.extend(records)


def _event(seller_id: str, name: str) -> Envelope:
    payload = SellerRegistered(seller_id=seller_id, name=name, kind="household", province_code="12", ward_code="03390")
    return Envelope.new(payload, source="/test")


async def test_two_concurrent_transactions_on_one_key_are_sent_in_commit_order(database_url):
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = db.postgres_engine(database_url, schema="public")
    sessions = db.session_factory(engine)
    await db.create_tables(engine, metadata)
    first, second, other_key = _event("s-1", "first"), _event("s-1", "second"), _event("s-2", "other")
    committed = []
    try:
        async with sessions() as t1, sessions() as t2, sessions() as t3:
            await t1.begin()
            await write_to_outbox(t1, table, [first])  # holds s-1 until it commits

            async def write_second() -> None:
                await t2.begin()
                await write_to_outbox(t2, table, [second])
                await t2.commit()
                committed.append("second")

            second_writer = asyncio.create_task(write_second())
            # Another aggregate is not held up by s-1.
            await t3.begin()
            await asyncio.wait_for(write_to_outbox(t3, table, [other_key]), timeout=5)
            await t3.commit()
            committed.append("other")

            await asyncio.sleep(0.5)
            assert not second_writer.done()  # waits for the first writer of s-1 to commit
            await t1.commit()
            committed.append("first")
            await asyncio.wait_for(second_writer, timeout=10)

        producer = CapturingProducer()
        relay = OutboxRelay(service="test", table=table, engine=engine, sessions=sessions, producer=producer)
        assert await relay.publish_batch() == 3
        sent_about_s1 = [r.headers for r in producer.sent if r.key == b"s-1"]
        ids = [dict(h)["ce_id"].decode() for h in sent_about_s1]
        assert committed == ["other", "first", "second"]
        assert ids == [first.id, second.id]  # send order of one key = its commit order
    finally:
        await engine.dispose()
