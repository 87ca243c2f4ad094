"""Past its in-flight limit a process sheds requests at once (503 + Retry-After) and recovers after."""

import asyncio

import httpx
from fastapi import FastAPI

from vuonminh.shared.backpressure import InFlightLimit


def _app(release: asyncio.Event, entered: list[str]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(InFlightLimit, max_in_flight=3)

    @app.post("/v1/webhooks/direct")
    async def slow(payload: dict) -> dict:
        entered.append(payload["id"])
        await release.wait()
        return {"accepted": payload["id"]}

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"status": "ready"}

    return app


async def test_requests_past_the_limit_are_shed_at_once_and_accepted_ones_finish():
    release = asyncio.Event()
    entered: list[str] = []
    transport = httpx.ASGITransport(app=_app(release, entered))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        held = [asyncio.create_task(client.post("/v1/webhooks/direct", json={"id": f"o{i}"})) for i in range(3)]
        while len(entered) < 3:
            await asyncio.sleep(0.01)

        shed = await client.post("/v1/webhooks/direct", json={"id": "o3"})
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert "capacity" in shed.json()["detail"]
        assert "o3" not in entered  # refused before the app saw it

        # An overloaded process still answers its probes.
        assert (await client.get("/readyz")).status_code == 200

        release.set()
        answers = await asyncio.gather(*held)
        assert [a.status_code for a in answers] == [200, 200, 200]

        again = await client.post("/v1/webhooks/direct", json={"id": "o4"})
        assert again.status_code == 200 and again.json() == {"accepted": "o4"}
