"""Real headless Chromium for page tests, driven over the Chrome DevTools Protocol (test helper).

Debian's `chromium` package provides the browser (scripts/bootstrap --browser installs it).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one tab; `async with Browser() as browser: ...`."""

    def __init__(self, *, width: int = 390, height: int = 844, headers: dict[str, str] | None = None) -> None:
        self.width, self.height = width, height  # a phone's viewport by default
        self.headers = headers or {}  # sent with every request of the tab (e.g. Authorization)
        self._profile = tempfile.TemporaryDirectory(prefix="vuonminh-chromium-", ignore_cleanup_errors=True)
        self._process: subprocess.Popen | None = None
        self._socket: Any = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        executable = chromium_path()
        if executable is None:
            raise RuntimeError("no Chromium found: apt-get install chromium (or scripts/bootstrap --browser)")
        self._process = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",  # root in a container
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = await self._devtools_port()
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        self._socket = await websockets.connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        if self.headers:
            await self.send("Network.enable")
            await self.send("Network.setExtraHTTPHeaders", {"headers": self.headers})
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": self.width < 600},
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._profile.cleanup()

    async def _devtools_port(self, timeout_s: float = 30.0) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().splitlines()[0])
            await asyncio.sleep(0.1)
        raise RuntimeError("Chromium did not open its DevTools port")

    async def send(self, method: str, params: dict | None = None) -> dict:
        message_id = next(self._ids)
        await self._socket.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        while True:
            reply = json.loads(await self._socket.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str, *, timeout_s: float = 30.0) -> None:
        """Loads `url` and waits until the document and its scripts have run."""
        await self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.evaluate("document.readyState") == "complete" and await self.evaluate("location.href") == url:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{url} did not load within {timeout_s} s")

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        height = self.height
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            height = max(self.height, int(metrics["cssContentSize"]["height"]))
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": self.width < 600},
        )
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": self.width < 600},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
