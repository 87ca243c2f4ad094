"""`vuonminh run --demo` registers the demo shops, prints their secrets, and `send-orders` signs as each."""

import re
import subprocess
import sys

import httpx
import pytest

from vuonminh.wiring.demo import demo_catalog
from vuonminh.wiring.testing import VuonminhProcess, eventually

pytestmark = pytest.mark.slow


def _printed_shop_secrets(log: str) -> dict[str, str]:
    return dict(re.findall(r"--shop (\S+)=(whsec_\S+)", log))


def _printed_keys(log: str) -> dict[str, str]:
    return {who.strip(): key for who, key in re.findall(r"^ {4}(operator|seller \S+)\s+(vmk_\S+)$", log, re.M)}


async def test_the_demo_shops_get_their_own_secrets_and_keep_them_across_restarts(tmp_path):
    data_dir = tmp_path / "data"
    # No global secret: the demo shops sign with their own.
    env = {"VUONMINH_DIRECT_SECRET": "", "VUONMINH_DEMO_CARRIER_STEP_S": "0.2"}
    run = VuonminhProcess(["run", "--demo", "--data-dir", str(data_dir)], env=env, log_path=tmp_path / "run.log")
    try:
        run.start()
        await run.wait_ready()
        secrets = _printed_shop_secrets(run.log_tail(200))
        keys = _printed_keys(run.log_tail(200))
        assert set(keys) == {"operator", "seller bl-co-ba-hong"}, run.log_tail(200)
        assert set(secrets) == set(demo_catalog()["shops"])
        assert len(set(secrets.values())) == len(secrets)

        flags = [arg for shop, secret in secrets.items() for arg in ("--shop", f"{shop}={secret}")]
        sent = subprocess.run(
            [sys.executable, "-m", "vuonminh.wiring.cli", "send-orders", "--url", run.url, *flags]
            + ["--count", "6", "--run-id", "demo-test"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "'202': 6" in sent.stdout

        # The printed keys call the API: the operator sees every order, the seller its own lines.
        operator = {"Authorization": f"Bearer {keys['operator']}"}
        seller = {"Authorization": f"Bearer {keys['seller bl-co-ba-hong']}"}

        async def placed():
            async with httpx.AsyncClient(headers=operator, base_url=run.url) as client:
                found = (await client.get("/v1/orders")).json()
            # placed, confirmed once catalog reserved the stock, then on with the demo's carriers
            moving = ("placed", "confirmed", "shipped", "delivered", "returned")
            found = [order for order in found if order["status"] in moving]
            return found if len(found) == 6 else None

        orders = await eventually(placed, timeout_s=60)
        assert {order["shop_id"] for order in orders} <= set(secrets)
        async with httpx.AsyncClient(headers=seller, base_url=run.url) as client:
            own = (await client.get("/v1/orders")).json()
            assert (await client.get("/v1/sellers")).json()[0]["seller_id"] == "bl-co-ba-hong"
        assert all(line["seller_id"] == "bl-co-ba-hong" for order in own for line in order["lines"])

        # The demo's carriers take every parcel to its end, telling it through their own callbacks.
        async def shipments_ended():
            async with httpx.AsyncClient(headers=operator, base_url=run.url) as client:
                shipments = (await client.get("/v1/shipments")).json()
            ended = [s for s in shipments if s["status"] in ("delivered", "returned") and s["tracking_code"]]
            return shipments if shipments and len(ended) == len(shipments) else None

        shipments = await eventually(shipments_ended, timeout_s=90)
        assert len(shipments) >= 6 and "Carrier simulator:" in run.log_tail(400)

        run.stop()
        run.log_path.write_text("")
        run.start()
        await run.wait_ready()
        assert _printed_shop_secrets(run.log_tail(200)) == secrets
    finally:
        run.stop()


@pytest.mark.parametrize("platform", ["shopee", "lazada"])
async def test_the_demo_replays_a_livestream_from_a_simulated_marketplace(tmp_path, platform):
    """`run --demo --livestream`: the simulator posts the platform's signed webhooks and answers the
    platform client's fetches, all in the one process; every order lands once, under its channel."""
    args = ["run", "--demo", "--data-dir", str(tmp_path / "data"), "--livestream", platform]
    args += ["--livestream-orders", "25", "--livestream-speed", "0"]
    run = VuonminhProcess(args, env={"VUONMINH_DIRECT_SECRET": ""}, log_path=tmp_path / "run.log")
    try:
        run.start()
        await run.wait_ready()

        async def finished() -> str | None:
            found = re.search(
                r"25 orders, every one's last state fetched after .* (\d+) platform API calls", run.log_tail(400)
            )
            return found.group(1) if found else None

        api_calls = await eventually(finished, timeout_s=120)
        assert 0 < int(api_calls) <= 25 * 3, run.log_tail(100)
        operator = {"Authorization": f"Bearer {_printed_keys(run.log_tail(400))['operator']}"}

        async def stored():
            async with httpx.AsyncClient(headers=operator, base_url=run.url) as client:
                found = (await client.get("/v1/orders", params={"channel": platform, "limit": 100})).json()
            return found if len(found) == 25 else None

        orders = await eventually(stored, timeout_s=60)
        assert len({order["order_id"] for order in orders}) == 25
        assert {order["shop_id"] for order in orders} == {"7495001"}
    finally:
        run.stop()
