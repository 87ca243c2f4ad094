"""A small open-loop HTTP/1.1 client on asyncio streams, for the drain and the steady rate.

wrk measures intake alone; these two need what wrk cannot do: send exactly N orders and
retry the ones refused with a retryable status (the burst), or send at a constant rate
whatever the replies take (the steady run). Requests are pre-built bytes and replies are
parsed no further than the status and Content-Length, so the client stays cheap next to the
server it loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.orders import SignedOrder, http_request

RETRYABLE = {429, 502, 503, 504}
RESIGN_AFTER_S = 240  # the server refuses signatures older than 300 s


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes, timeout_s: float) -> tuple[int, dict[str, str]]:
        """Sends one request on the kept-alive connection; (status, headers) of the reply."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(request)
            return await asyncio.wait_for(self._reply(), timeout_s)
        except BaseException:
            self.close()
            raise

    async def _reply(self) -> tuple[int, dict[str, str]]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Delivery:
    """One order's fate: when it was first sent and finally answered, how many tries."""

    order: SignedOrder
    scheduled_s: float = 0.0
    first_sent_s: float = 0.0
    answered_s: float = 0.0
    status: int | str = 0
    attempts: int = 0

    @property
    def accepted(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300


@dataclass
class SendStats:
    deliveries: list[Delivery] = field(default_factory=list)
    replies: Counter = field(default_factory=Counter)  # every reply, retried ones included
    reply_latencies_s: list[float] = field(default_factory=list)
    started_s: float = 0.0
    finished_s: float = 0.0

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.accepted]

    @property
    def refusals(self) -> int:
        """Replies with a retryable status (the server shedding load), counted per try."""
        return sum(n for status, n in self.replies.items() if status in RETRYABLE)

    @property
    def failed(self) -> Counter:
        """Orders never accepted, by their last status."""
        return Counter(str(d.status) for d in self.deliveries if not d.accepted)


class Sender:
    def __init__(self, *, host: str, port: int, secret: str, timeout_s: float = 30.0, max_attempts: int = 30) -> None:
        self.host, self.port, self.secret = host, port, secret
        self.timeout_s, self.max_attempts = timeout_s, max_attempts
        self.stats = SendStats()
        self._host_header = f"{host}:{port}"

    async def deliver(self, delivery: Delivery, connection: Connection) -> None:
        """Posts the order until it is accepted, refused for good, or out of tries (bounded)."""
        clock = time.perf_counter
        delivery.first_sent_s = clock()
        order = delivery.order
        for attempt in range(1, self.max_attempts + 1):
            if time.time() - order.signed_at > RESIGN_AFTER_S:
                order = order.resigned(self.secret)
            delivery.attempts = attempt
            sent = clock()
            retry_after = 0.2
            try:
                status, headers = await connection.post(http_request(order, host=self._host_header), self.timeout_s)
                with contextlib.suppress(ValueError):
                    retry_after = float(headers.get("retry-after", retry_after))
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
                status = type(error).__name__
            now = clock()
            self.stats.reply_latencies_s.append(now - sent)
            self.stats.replies[status] += 1
            delivery.status, delivery.answered_s = status, now
            if delivery.accepted or (isinstance(status, int) and status not in RETRYABLE):
                return
            await asyncio.sleep(min(max(retry_after, 0.05), 5.0))

    async def burst(self, orders: list[SignedOrder], *, connections: int) -> SendStats:
        """Every order, as fast as the server takes them, on `connections` kept-alive connections."""
        self.stats = SendStats(deliveries=[Delivery(o) for o in orders])
        queue = iter(self.stats.deliveries)

        async def worker() -> None:
            connection = Connection(self.host, self.port)
            try:
                for delivery in queue:
                    await self.deliver(delivery, connection)
            finally:
                connection.close()

        self.stats.started_s = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        self.stats.finished_s = time.perf_counter()
        return self.stats

    async def steady(
        self,
        orders: list[SignedOrder],
        *,
        rate_per_s: float,
        max_connections: int = 512,
        on_accepted: Callable[[Delivery], None] | None = None,
    ) -> SendStats:
        """Order i is sent at start + i/rate whatever became of the earlier ones (open loop);
        a new connection opens when every open one is waiting for a reply."""
        self.stats = SendStats(deliveries=[Delivery(o) for o in orders])
        idle: list[Connection] = []
        opened = 0
        tasks: set[asyncio.Task] = set()
        slots = asyncio.Semaphore(max_connections)

        async def one(delivery: Delivery) -> None:
            nonlocal opened
            connection = idle.pop() if idle else None
            if connection is None:
                opened += 1
                connection = Connection(self.host, self.port)
            try:
                await self.deliver(delivery, connection)
            finally:
                idle.append(connection)
                slots.release()
            if delivery.accepted and on_accepted is not None:
                on_accepted(delivery)

        start = time.perf_counter() + 0.05
        self.stats.started_s = start
        for i, delivery in enumerate(self.stats.deliveries):
            delivery.scheduled_s = start + i / rate_per_s
            delay = delivery.scheduled_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            task = asyncio.create_task(one(delivery))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        for connection in idle:
            connection.close()
        self.stats.finished_s = time.perf_counter()
        self.connections_opened = opened
        return self.stats
