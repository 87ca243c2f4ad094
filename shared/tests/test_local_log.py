import asyncio
import sqlite3

import pytest

from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.transport import LogFull
from vuonminh.shared.transport.local import DataDirInUse, LocalLog, LocalTransport


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


def _big(topic: str, n: int) -> OutgoingRecord:
    return OutgoingRecord(topic=topic, key=f"k{n}".encode(), value=bytes(2000), headers=())


async def _fill(producer, topic: str) -> int:
    """Appends until the log refuses; returns how many records it took."""
    for n in range(10_000):
        try:
            await producer.send([_big(topic, n)])
        except LogFull:
            return n
    raise AssertionError("the log never filled up")


async def test_a_full_log_says_so_and_keeps_what_it_accepted(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3", max_bytes=256 * 1024)
    await transport.ensure_topics(["t"])
    producer = transport.producer(client_id="p")
    accepted = await _fill(producer, "t")

    with pytest.raises(LogFull) as refused:
        await producer.send([_big("t", 9999)])

    # The real cause, not "cannot rollback - no transaction is active".
    assert "is full" in str(refused.value) and "VUONMINH_LOCAL_LOG_MAX_MB=0.25" in str(refused.value)
    assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
    assert "database or disk is full" in str(refused.value.__cause__)
    consumer = transport.consumer(group_id="g", topics=["t"])
    await consumer.start()
    records = await consumer.poll(max_records=10_000, timeout_s=0.1)
    assert accepted > 20 and [r.offset for r in records] == list(range(accepted))
    await transport.close()


async def test_offset_commits_go_through_while_appends_are_refused(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3", max_bytes=256 * 1024)
    await transport.ensure_topics(["t"])
    producer = transport.producer(client_id="p")
    consumer = transport.consumer(group_id="g", topics=["t"])
    await consumer.start()
    await consumer.commit({("t", 0): 0})  # the group's row exists before the log is full
    accepted = await _fill(producer, "t")

    # Appends and a commit waiting together: the appends fail, the commit lands.
    results = await asyncio.gather(
        producer.send([_big("t", 1)]), consumer.commit({("t", 0): accepted}), return_exceptions=True
    )

    assert isinstance(results[0], LogFull) and results[1] is True
    assert await transport.log.committed("g", "t") == accepted
    await transport.close()


async def test_intake_resumes_once_retention_has_freed_space(tmp_path):
    transport = LocalTransport(tmp_path / "log.sqlite3", max_bytes=256 * 1024)
    await transport.ensure_topics(["t"])
    producer = transport.producer(client_id="p")
    accepted = await _fill(producer, "t")

    deleted = await transport.log.delete_records("t", below_offset=accepted)
    await producer.send([_big("t", 1)])

    assert deleted == accepted - 1  # the newest record is kept: it carries the next offset
    consumer = transport.consumer(group_id="g", topics=["t"])
    await consumer.start()
    assert [r.offset for r in await consumer.poll(max_records=100, timeout_s=0.1)] == [accepted - 1, accepted]
    await transport.close()


async def test_a_raised_cap_takes_effect_on_restart_and_nothing_is_lost(tmp_path):
    path = tmp_path / "log.sqlite3"
    small = LocalTransport(path, max_bytes=256 * 1024)
    await small.ensure_topics(["t"])
    accepted = await _fill(small.producer(client_id="p"), "t")
    await small.close()

    larger = LocalTransport(path, max_bytes=1024 * 1024)
    await larger.ensure_topics(["t"])
    await larger.producer(client_id="p").send([_big("t", n) for n in range(10)])

    consumer = larger.consumer(group_id="g", topics=["t"])
    await consumer.start()
    records = await consumer.poll(max_records=10_000, timeout_s=0.1)
    assert [r.offset for r in records] == list(range(accepted + 10))
    await larger.close()


async def test_another_writer_beside_the_process_gets_the_next_offsets(tmp_path):
    path = tmp_path / "log.sqlite3"
    running = LocalTransport(path)
    await running.ensure_topics(["t"])
    await running.producer(client_id="p").send([_record("t", n) for n in range(3)])
    tool = LocalLog(path, exclusive=False)  # an operator tool: no lock taken
    await tool.open()

    await tool.append([_record("t", 3)])
    await running.producer(client_id="p").send([_record("t", 4)])

    consumer = running.consumer(group_id="g", topics=["t"])
    await consumer.start()
    records = await consumer.poll(max_records=100, timeout_s=0.1)
    assert [(r.offset, r.value) for r in records] == [(n, f"v{n}".encode()) for n in range(5)]
    await tool.close()
    await running.close()


async def test_retention_keeps_the_newest_record_so_offsets_continue_after_restart(tmp_path):
    path = tmp_path / "log.sqlite3"
    transport = LocalTransport(path)
    await transport.ensure_topics(["t"])
    await transport.producer(client_id="p").send([_record("t", n) for n in range(5)])
    assert await transport.log.delete_records("t", below_offset=100) == 4
    await transport.close()

    reopened = LocalTransport(path)
    await reopened.ensure_topics(["t"])
    await reopened.producer(client_id="p").send([_record("t", 5)])

    assert await reopened.log.topics() == {"t": (4, 5)}
    await reopened.close()
