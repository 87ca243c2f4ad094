import asyncio

import pytest

from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.transport.local import DataDirInUse, LocalTransport


def _record(topic: str, n: int) -> OutgoingRecord:
    return OutgoingRecord(
        topic=topic, key=f"k{n}".encode(), value=f"v{n}".encode(), headers=(("h", bytes([0, 255, n % 256])),)
    )


async def test_records_are_read_in_order_with_headers_intact(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3")
    await transport.ensure_topics(["t"])
    producer = transport.producer(client_id="p")
    await asyncio.gather(*(producer.send([_record("t", n)]) for n in range(50)))
    consumer = transport.consumer(group_id="g", topics=["t"])
    await consumer.start()

    records = await consumer.poll(max_records=100, timeout_s=0.1)

    assert [r.offset for r in records] == list(range(50))
    assert sorted(r.value for r in records) == sorted(f"v{n}".encode() for n in range(50))
    assert all(r.headers[0][1][:2] == bytes([0, 255]) for r in records)  # binary headers survive
    await transport.close()


async def test_uncommitted_records_are_delivered_again_after_restart(tmp_path):
    path = tmp_path / "log.sqlite3"
    transport = LocalTransport(path)
    await transport.ensure_topics(["t"])
    await transport.producer(client_id="p").send([_record("t", n) for n in range(10)])
    consumer = transport.consumer(group_id="g", topics=["t"])
    await consumer.start()
    first = await consumer.poll(max_records=4, timeout_s=0.1)
    await consumer.commit({("t", 0): first[-1].offset + 1})
    await consumer.poll(max_records=4, timeout_s=0.1)  # read, never committed
    await transport.close()

    reopened = LocalTransport(path)
    await reopened.ensure_topics(["t"])
    again = reopened.consumer(group_id="g", topics=["t"])
    await again.start()
    records = await again.poll(max_records=100, timeout_s=0.1)
    other_group = reopened.consumer(group_id="other", topics=["t"])
    await other_group.start()

    assert [r.offset for r in records] == list(range(4, 10))
    assert len(await other_group.poll(max_records=100, timeout_s=0.1)) == 10
    await reopened.producer(client_id="p").send([_record("t", 99)])
    assert [r.offset for r in await again.poll(max_records=10, timeout_s=1)] == [10]  # offsets continue
    await reopened.close()


async def test_a_waiting_consumer_wakes_on_append(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3")
    await transport.ensure_topics(["t"])
    consumer = transport.consumer(group_id="g", topics=["t"])
    await consumer.start()
    polling = asyncio.create_task(consumer.poll(max_records=10, timeout_s=5))
    await asyncio.sleep(0.05)
    await transport.producer(client_id="p").send([_record("t", 1)])

    records = await asyncio.wait_for(polling, 2)

    assert [r.value for r in records] == [b"v1"]
    await transport.close()


async def test_a_second_process_cannot_open_the_same_log(tmp_path):
    first = LocalTransport(tmp_path / "log.sqlite3")
    await first.ensure_topics(["t"])
    second = LocalTransport(tmp_path / "log.sqlite3")
    with pytest.raises(DataDirInUse):
        await second.ensure_topics(["t"])
    await first.close()
