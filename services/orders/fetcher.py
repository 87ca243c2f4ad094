"""The worker that turns platform notifications into orders: it reads `orders.notifications`, fetches
the orders' details from each platform's Open API (ids batched per shop as the API allows), normalises
them and appends `order_received.v2` to `orders.intake`, where the consumer applies them.

- A fetch that keeps failing (timeouts, 5xx, throttling, after the client's retries) sends its
  notifications to `orders.notifications.retry`, fetched again later with a growing delay: never dropped.
- An answer that is not what the platform documents is dead-lettered (`orders.notifications.dlq`) with
  the error, nothing of it applied.
- While a platform's circuit is open the worker waits and does not advance: notifications wait in the log.

Exactly once as far as it matters: the events it appends have ids derived from the notification's, so
a batch fetched twice (a crash before the offset commit) is dropped by the consumer's inbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

import structlog
from sqlmodel import select

from vuonminh.orders.channels import MARKETPLACES
from vuonminh.orders.channels.base import PlatformError, ShapeError
from vuonminh.orders.metrics import NOTIFICATIONS
from vuonminh.orders.models import Shop
from vuonminh.orders.platform_api import CircuitOpen, PlatformClient, ShopConnection
from vuonminh.orders.settings import platform_settings
from vuonminh.orders.shops import SecretBox, SecretsKeyMissing
from vuonminh.shared import db
from vuonminh.shared.events import Envelope, PlatformOrderNotified, Topic, dead_letter_topic
from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.retry import scheduled_backoff_s, until_done
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport.base import TopicPartition

log = structlog.get_logger(__name__)

GROUP = "vuonminh.orders.fetcher"
_FETCHED_NAMESPACE = uuid.UUID("5d1f7b0e-2c43-4b8e-9a57-8f0e6c1d2b34")
POLL_MAX_RECORDS = 500


def client_of(runtime: ServiceRuntime) -> PlatformClient:
    client = runtime.state.get("platform_client")
    if client is None:
        transport = runtime.state.get("platform_http_transport")  # tests may route it
        client = runtime.state["platform_client"] = PlatformClient(platform_settings(runtime), transport=transport)
    return client


class Fetcher:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.client = client_of(runtime)
        self.box = SecretBox(runtime.settings.secrets_key)
        self.fetched = 0

    # -- shops -----------------------------------------------------------------------------------------
    async def shop(self, channel: str, shop_id: str) -> ShopConnection | None:
        async with db.read_only_session(self.runtime.engine) as session:
            row = (await session.exec(select(Shop).where(Shop.channel == channel, Shop.shop_id == shop_id))).first()
        if row is None or row.access_token_encrypted is None:
            return None
        try:
            token = self.box.decrypt(row.access_token_encrypted)
        except SecretsKeyMissing:
            return None
        return ShopConnection(
            channel=channel, shop_id=shop_id, seller_id=row.seller_id, access_token=token, shop_cipher=row.shop_cipher
        )

    # -- one poll --------------------------------------------------------------------------------------
    async def process(self, records: Sequence[IncomingRecord]) -> None:
        """Fetches and appends for every record, or sends it to the retry or dead-letter topic.
        Raises CircuitOpen when a platform refuses calls for now (the caller rewinds and waits)."""
        groups: dict[tuple[str, str], list[tuple[IncomingRecord, Envelope, PlatformOrderNotified]]] = defaultdict(list)
        for record in records:
            try:
                envelope = Envelope.from_record(record)
                notified = envelope.data_as(PlatformOrderNotified)
            except Exception as error:
                await self.dead_letter(record, error)
                continue
            groups[(notified.channel, notified.shop_id)].append((record, envelope, notified))
        for (channel_name, shop_id), items in groups.items():
            channel = MARKETPLACES.get(channel_name)
            shop = await self.shop(channel_name, shop_id) if channel else None
            if channel is None or shop is None:
                why = f"shop {shop_id!r} of {channel_name} is not connected (vuonminh shops add with its tokens)"
                for record, _envelope, notified in items:
                    await self.retry_later(record, notified, why, outcome="unknown_shop")
                continue
            for start in range(0, len(items), channel.batch_size):
                await self.fetch_chunk(channel, shop, items[start : start + channel.batch_size])

    async def fetch_chunk(self, channel, shop: ShopConnection, items) -> None:  # noqa: ANN001
        order_ids = list(dict.fromkeys(notified.order_id for _r, _e, notified in items))
        try:
            details = await channel.fetch_orders(self.client, shop, order_ids)
        except CircuitOpen:
            raise
        except ShapeError as error:
            for record, _envelope, _notified in items:
                await self.dead_letter(record, error)
            return
        except PlatformError as error:
            if error.retryable or error.auth:
                for record, _envelope, notified in items:
                    await self.retry_later(record, notified, str(error))
            else:
                for record, _envelope, _notified in items:
                    await self.dead_letter(record, error)
            return
        except Exception as error:  # timeouts, 5xx, throttling after the client's retries
            for record, _envelope, notified in items:
                await self.retry_later(record, notified, repr(error))
            return
        by_id: dict[str, dict] = {}
        try:
            for detail in details:
                by_id[channel.order_id_of(detail)] = detail
        except ShapeError as error:
            for record, _envelope, _notified in items:
                await self.dead_letter(record, error)
            return
        out: list[OutgoingRecord] = []
        for record, envelope, notified in items:
            detail = by_id.get(notified.order_id)
            if detail is None:
                await self.retry_later(record, notified, "the platform's answer left this order out")
                continue
            try:
                received = channel.normalise(detail, shop_id=notified.shop_id, received_at=utc_now())
            except (ShapeError, ValueError) as error:  # ValueError: pydantic's, on a value out of range
                await self.dead_letter(record, error)
                continue
            received = received.model_copy(update={"notification_id": notified.notification_id})
            event_id = str(uuid.uuid5(_FETCHED_NAMESPACE, envelope.id))
            out.append(
                Envelope.new(
                    received, source=f"/vuonminh/orders/fetcher/{channel.slug}", event_id=event_id, caused_by=envelope
                ).to_record()
            )
            NOTIFICATIONS.labels(channel.name, "fetched").inc()
        if out:
            await until_done("append fetched orders", lambda: self.runtime.producer.send(out))
            self.fetched += len(out)

    # -- the two ways out but success ----------------------------------------------------------------------
    async def retry_later(
        self, record: IncomingRecord, notified: PlatformOrderNotified, error: str, *, outcome: str = "retry_topic"
    ) -> None:
        settings = platform_settings(self.runtime)
        attempts = notified.attempts + 1
        delay = scheduled_backoff_s(attempts, initial_s=settings.retry_delay_s, max_s=settings.retry_delay_max_s)
        again = notified.model_copy(
            update={"attempts": attempts, "last_error": error[:500], "retry_at": utc_now() + timedelta(seconds=delay)}
        )
        envelope = Envelope.from_record(record)
        retried = Envelope.new(
            again,
            source=envelope.source,
            event_id=str(uuid.uuid5(_FETCHED_NAMESPACE, f"{envelope.id}:retry:{attempts}")),
            caused_by=envelope,
        ).to_record()
        retried = OutgoingRecord(
            topic=Topic.ORDER_NOTIFICATIONS_RETRY, key=retried.key, value=retried.value, headers=retried.headers
        )
        await until_done("send to the retry topic", lambda: self.runtime.producer.send([retried]))
        NOTIFICATIONS.labels(notified.channel, outcome).inc()
        log.warning(
            "orders.notification_retry_later",
            channel=notified.channel,
            order_id=notified.order_id,
            attempts=attempts,
            retry_in_s=delay,
            error=error,
        )

    async def dead_letter(self, record: IncomingRecord, error: BaseException) -> None:
        headers = record.headers + tuple(
            (name, value.encode())
            for name, value in (
                ("dlq_original_topic", record.topic),
                ("dlq_original_partition", str(record.partition)),
                ("dlq_original_offset", str(record.offset)),
                ("dlq_consumer_group", GROUP),
                ("dlq_error", repr(error)[:2000]),
                ("dlq_failed_at", utc_now().isoformat()),
            )
        )
        parked = OutgoingRecord(
            topic=dead_letter_topic(record.topic), key=record.key or b"", value=record.value or b"", headers=headers
        )
        await until_done("dead-letter send", lambda: self.runtime.producer.send([parked]))
        channel = record.header("ce_source") or "?"
        NOTIFICATIONS.labels(channel.rsplit("/", 1)[-1], "dead_lettered").inc()
        log.error("orders.notification_dead_lettered", topic=record.topic, offset=record.offset, error=repr(error))


async def _consume(runtime: ServiceRuntime, topic: str, *, delayed: bool) -> None:
    fetcher = Fetcher(runtime)
    runtime.state.setdefault("fetchers", []).append(fetcher)
    consumer = runtime.transport.consumer(group_id=f"{GROUP}{'.retry' if delayed else ''}", topics=[topic])
    await until_done("start the fetcher's consumer", consumer.start)
    try:
        while True:
            try:
                records = await consumer.poll(max_records=POLL_MAX_RECORDS, timeout_s=0.5)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("orders.fetcher_poll_failed", error=repr(error))
                await asyncio.sleep(1)
                continue
            if not records:
                continue
            if delayed:
                records = await _due(consumer, records)
                if not records:
                    continue
            try:
                await fetcher.process(records)
            except CircuitOpen as error:
                _rewind(consumer, records)
                log.warning("orders.fetcher_waits_for_platform", error=str(error))
                await asyncio.sleep(max(error.retry_in_s, 0.1))
                continue
            positions: dict[TopicPartition, int] = {}
            for record in records:
                positions[(record.topic, record.partition)] = record.offset + 1
            await until_done("commit the fetcher's offsets", lambda p=positions: consumer.commit(p))
    finally:
        await consumer.stop()


async def _due(consumer, records: list[IncomingRecord]) -> list[IncomingRecord]:  # noqa: ANN001
    """The retry topic's records up to the first one not due yet; the rest are read again later."""
    now = utc_now()
    for index, record in enumerate(records):
        try:
            retry_at = Envelope.from_record(record).data_as(PlatformOrderNotified).retry_at
        except Exception:
            continue  # process() dead-letters it
        if retry_at is not None and retry_at > now:
            _rewind(consumer, records[index:])
            await asyncio.sleep(min((retry_at - now).total_seconds(), 1.0))
            return records[:index]
    return records


def _rewind(consumer, records: Sequence[IncomingRecord]) -> None:  # noqa: ANN001
    first: dict[TopicPartition, int] = {}
    for record in records:
        first.setdefault((record.topic, record.partition), record.offset)
    for partition, offset in first.items():
        consumer.seek(partition, offset)


async def fetch_platform_orders(runtime: ServiceRuntime) -> None:
    """Background job of the worker: notifications to orders."""
    await _consume(runtime, Topic.ORDER_NOTIFICATIONS, delayed=False)


async def retry_platform_orders(runtime: ServiceRuntime) -> None:
    """Background job of the worker: notifications whose fetch failed, tried again when due."""
    await _consume(runtime, Topic.ORDER_NOTIFICATIONS_RETRY, delayed=True)
