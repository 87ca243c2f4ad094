"""`vuonminh shops add|list|rotate-secret|revoke-secret` on the embedded data dir, as an operator runs them."""

import os
import subprocess
import sys

from vuonminh.wiring.testing import embedded_client, encode, order_body, signed_headers


def shops_command(data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "VUONMINH_", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, "-m", "vuonminh.wiring.cli", "shops", *args, "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_an_operator_adds_rotates_lists_and_revokes_a_shops_secrets(tmp_path):
    data_dir = tmp_path / "data"

    added = shops_command(data_dir, "add", "tts-binh-lu", "--seller", "co-ba-hong")
    assert added.returncode == 0, added.stderr
    first = added.stdout.strip()
    assert first.startswith("whsec_") and "shown this once" in added.stderr

    rotated = shops_command(data_dir, "rotate-secret", "tts-binh-lu")
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.strip()
    assert second.startswith("whsec_") and second != first

    listed = shops_command(data_dir, "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["CHANNEL", "SHOP", "SELLER"]
    assert row.split()[:4] == ["direct", "tts-binh-lu", "co-ba-hong", "2"]
    # Secrets are never shown again, and never stored in clear.
    for output in (listed.stdout, listed.stderr, rotated.stderr):
        assert first not in output and second not in output
    assert first.encode() not in (data_dir / "orders.sqlite3").read_bytes()

    # The platform started on that data dir (with its key) takes both secrets until the old one is revoked.
    key = (data_dir / "secrets-key").read_text().strip()
    async with embedded_client(data_dir, direct_secret=None, secrets_key=key) as (client, _platform):
        for secret in (first, second):
            raw = encode(order_body(f"CLI-{secret[-6:]}", shop_id="tts-binh-lu"))
            response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, secret))
            assert response.status_code == 202

    revoked = shops_command(data_dir, "revoke-secret", "tts-binh-lu")
    assert revoked.returncode == 0 and "previous secret" in revoked.stderr

    async with embedded_client(data_dir, direct_secret=None, secrets_key=key) as (client, _platform):
        raw = encode(order_body("CLI-after", shop_id="tts-binh-lu"))
        old = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, first))
        new = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, second))
    assert (old.status_code, new.status_code) == (401, 202)


def test_a_command_that_cannot_be_done_says_why_and_fails(tmp_path):
    result = shops_command(tmp_path, "rotate-secret", "nobody")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "vuonminh shops rotate-secret: no shop 'nobody' in channel direct (vuonminh shops list shows them)"
    )
