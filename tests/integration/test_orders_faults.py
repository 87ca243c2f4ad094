"""orders' faults on Kafka and PostgreSQL: the catalog late, the largest and over-limit orders, key
collisions, a changed order, per-shop secrets, and intake while orders' database is cut off."""

import asyncio
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager, suppress

import httpx
import pytest
from sqlalchemy.engine import make_url

from vuonminh.shared import db
from vuonminh.shared.events.types import MAX_GRAMS, MAX_ORDER_ITEMS, MAX_QUANTITY, MAX_VND
from vuonminh.wiring.testing import (
    TEST_SECRET,
    TEST_SECRETS_KEY,
    check_orders_upgrade_keeps_stored_orders,
    encode,
    eventually,
    operator_headers,
    order_body,
    signed_headers,
)

pytestmark = pytest.mark.integration

# 200 lines of 10,000 sachets of 5 g: at the money and the weight limits at once.
SACHET = {"sku": "CHE-GOI-5G", "seller_id": "co-ba-hong", "name": "Chè gói 5 g", "unit_weight_g": 5}


async def _post(client: httpx.AsyncClient, body: dict, secret: str = TEST_SECRET) -> httpx.Response:
    raw = encode(body)
    return await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, secret))


async def test_late_catalog_limits_collisions_and_changed_orders(start_stack, seed_catalog_via, count_rows):
    stack = await start_stack()
    await seed_catalog_via(stack["catalog"])
    async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["orders"].url, timeout=30) as orders:
        # The catalog late: the order names a product catalog has not listed yet.
        unit_price = MAX_VND // (MAX_ORDER_ITEMS * MAX_QUANTITY)
        item = {"sku": SACHET["sku"], "quantity": MAX_QUANTITY, "unit_price_vnd": unit_price}
        assert (await _post(orders, order_body("BIG-1", items=[item] * MAX_ORDER_ITEMS))).status_code == 202

        async def parked() -> bool:
            return await count_rows("SELECT count(*) FROM orders.order_catalog_waits WHERE ref = 'CHE-GOI-5G'") == 1

        await eventually(parked, timeout_s=30)
        async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["catalog"].url) as catalog:
            assert (
                await catalog.post("/v1/products", json={**SACHET, "initial_stock": MAX_ORDER_ITEMS * MAX_QUANTITY})
            ).status_code == 201

        # Over the limits: refused at once, naming the field.
        line_over = order_body("BIG-2", items=[{"sku": "KHOAI-SAM-5KG", "quantity": 2001, "unit_price_vnd": 5_000_001}])
        total_over = order_body("BIG-3", items=[{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": MAX_VND}] * 2)
        refused = [await _post(orders, body) for body in (line_over, total_over)]
        # Within the money limits, 2,001 bags of 5 kg weigh over 10 t: rejected with its reason.
        too_heavy = [{"sku": "KHOAI-SAM-5KG", "quantity": 2001, "unit_price_vnd": 175000}]
        assert (await _post(orders, order_body("HEAVY-1", items=too_heavy))).status_code == 202
        assert [r.status_code for r in refused] == [422, 422]
        assert [r.json()["detail"][0]["loc"] for r in refused] == [["items", 0, "unit_price_vnd"], ["items"]]

        # Ids that joined with ":" would be one key.
        assert (await _post(orders, order_body("c", shop_id="a:b"))).status_code == 202
        assert (await _post(orders, order_body("b:c", shop_id="a"))).status_code == 202

        # A placed order sent again with other content.
        assert (await _post(orders, order_body("CHANGED-1"))).status_code == 202

        async def changed_placed() -> bool:
            query = (
                "SELECT count(*) FROM orders.orders "
                "WHERE external_order_id = 'CHANGED-1' AND status IN ('placed', 'confirmed')"
            )
            return await count_rows(query) == 1

        await eventually(changed_placed, timeout_s=30)
        # Intake answers 409 from its in-memory keys of final orders: wait for a pass that saw it placed.
        placed_seen_at = time.time()

        async def intake_caught_up() -> bool:
            metrics = (await orders.get("/metrics")).text
            line = next(x for x in metrics.splitlines() if x.startswith("vuonminh_intake_final_orders_covered"))
            return float(line.split()[-1]) > placed_seen_at

        await eventually(intake_caught_up, timeout_s=30)
        changed = order_body("CHANGED-1", payment={"method": "prepaid"})
        conflict = await _post(orders, changed)
        assert conflict.status_code == 409 and conflict.json()["differs"] == ["payment_method"]

    # The largest order: stored and counted, BIGINT all the way; ten tonnes go to no carrier but to a person.
    async def big_counted() -> bool:
        return await count_rows("SELECT count(*) FROM analytics.seller_order_facts WHERE gmv_vnd = $1", MAX_VND) == 1

    await eventually(big_counted, timeout_s=60)
    assert (
        await count_rows(
            "SELECT count(*) FROM orders.orders WHERE total_vnd = $1 AND total_weight_g = $2",
            MAX_VND,
            MAX_GRAMS,
        )
        == 1
    )

    async def flagged() -> bool:
        return (
            await count_rows(
                "SELECT count(*) FROM logistics.shipments WHERE weight_g = $1 AND status = 'needs_attention'", MAX_GRAMS
            )
            == 1
        )

    await eventually(flagged, timeout_s=60)

    async def collisions_apart() -> bool:
        return await count_rows("SELECT count(*) FROM orders.orders WHERE shop_id IN ('a', 'a:b')") == 2

    await eventually(collisions_apart, timeout_s=30)
    assert await count_rows("SELECT count(DISTINCT id) FROM orders.orders WHERE shop_id IN ('a', 'a:b')") == 2
    assert await count_rows("SELECT count(*) FROM orders.orders WHERE external_order_id IN ('BIG-2', 'BIG-3')") == 0

    async def heavy_rejected() -> bool:
        query = "SELECT count(*) FROM orders.orders WHERE external_order_id = 'HEAVY-1' AND status = 'rejected'"
        return await count_rows(query) == 1

    await eventually(heavy_rejected, timeout_s=30)


async def test_revision_0002_keeps_the_orders_stored_before_it_on_postgres(database_url):
    engine = db.postgres_engine(database_url, schema="orders")
    try:
        await check_orders_upgrade_keeps_stored_orders(engine)
    finally:
        await engine.dispose()


# -- per-shop secrets, and intake while orders' database is cut off ---------------------------------------
class TcpProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; `cut` drops every connection and refuses new ones,
    as a database host gone from the network would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._streams |= {client_writer, server_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with suppress(OSError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self._streams -= {client_writer, server_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._streams):
            writer.transport.abort()
        self._streams.clear()
        await self._server.wait_closed()

    @asynccontextmanager
    async def cut_off(self):
        await self.cut()
        try:
            yield
        finally:
            await self.start()


def _shops_command(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "VUONMINH_SECRETS_KEY": TEST_SECRETS_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "vuonminh.wiring.cli", "shops", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def test_shops_sign_with_their_own_secrets_and_intake_needs_no_database(
    start_service, seed_catalog_via, database_url, count_rows
):
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        await _shops_and_outage(start_service, seed_catalog_via, database_url, count_rows, proxy)
    finally:
        await proxy.cut()


async def _shops_and_outage(start_service, seed_catalog_via, database_url, count_rows, proxy: TcpProxy) -> None:
    url = make_url(database_url)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    catalog = await start_service("catalog")
    orders = await start_service(
        "orders",
        extra_env={
            "DATABASE_URL": through_proxy,
            "VUONMINH_SECRETS_KEY": TEST_SECRETS_KEY,
            "VUONMINH_DIRECT_SECRET": "",  # as in production: no global secret
            "VUONMINH_SHOP_REFRESH_S": "0.5",
            "VUONMINH_INTAKE_LOOKUP_TIMEOUT_S": "0.5",
        },
    )
    await asyncio.gather(catalog.wait_ready(), orders.wait_ready())
    await seed_catalog_via(catalog)
    own = _shops_command(database_url, "add", "tts-binh-lu", "--seller", "co-ba-hong")
    other = _shops_command(database_url, "add", "tts-thai-nguyen")

    async with httpx.AsyncClient(headers=operator_headers(), base_url=orders.url, timeout=30) as client:
        # A shop added by the operator's command is taken at once, with its own secret only.
        assert (await _post(client, order_body("SHOP-1", shop_id="tts-binh-lu"), own)).status_code == 202
        for wrong in (other, TEST_SECRET):  # another shop's secret; a secret of no shop
            refused = await _post(client, order_body("SHOP-2", shop_id="tts-binh-lu"), wrong)
            assert refused.status_code == 401
        unknown = await _post(client, order_body("SHOP-3", shop_id="nobody"), own)
        assert unknown.status_code == 401 and "unknown shop 'nobody'" in unknown.json()["detail"]

        # orders' database unreachable: intake answers from memory and the log.
        async with proxy.cut_off():
            down = [await _post(client, order_body(f"DOWN-{n}", shop_id="tts-binh-lu"), own) for n in range(3)]
        assert [r.status_code for r in down] == [202, 202, 202]

        async def stored() -> bool:
            query = (
                "SELECT count(*) FROM orders.orders WHERE shop_id = 'tts-binh-lu' AND status IN ('placed', 'confirmed')"
            )
            return await count_rows(query) == 4

        await eventually(stored, timeout_s=90)

        # Rotation: both secrets work, then the old one is revoked.
        new = _shops_command(database_url, "rotate-secret", "tts-binh-lu")

        async def takes(secret: str, order_id: str, status: int) -> bool:
            response = await _post(client, order_body(order_id, shop_id="tts-binh-lu"), secret)
            return response.status_code == status

        assert await eventually(lambda: takes(new, "ROT-1", 202), timeout_s=30)
        assert await takes(own, "ROT-2", 202)
        _shops_command(database_url, "revoke-secret", "tts-binh-lu")
        assert await eventually(lambda: takes(own, "ROT-3", 401), timeout_s=30)
        assert await takes(new, "ROT-4", 202)
        assert "tts-binh-lu" in _shops_command(database_url, "list")
