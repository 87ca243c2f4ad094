import pytest

from vuonminh.orders.webhooks import SignatureError, sign, verify

BODY = b'{"order_id": "TT-1"}'
NOW = 1_795_000_000


def test_a_fresh_correct_signature_passes():
    verify(sign(BODY, secret="s3cret", timestamp=NOW), BODY, secrets=["s3cret"], now=NOW + 10, tolerance_s=300)


def test_any_of_several_v1_values_may_match_during_secret_rotation():
    good = sign(BODY, secret="new", timestamp=NOW).split("v1=")[1]
    header = f"t={NOW},v1={'0' * 64},v1={good}"
    verify(header, BODY, secrets=["new"], now=NOW, tolerance_s=300)


def test_a_signature_under_either_of_two_active_secrets_passes():
    for secret in ("old", "new"):
        verify(sign(BODY, secret=secret, timestamp=NOW), BODY, secrets=["new", "old"], now=NOW, tolerance_s=300)
    with pytest.raises(SignatureError):
        verify(sign(BODY, secret="other", timestamp=NOW), BODY, secrets=["new", "old"], now=NOW, tolerance_s=300)


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, BODY, NOW, "missing"),
        ("v1=abc", BODY, NOW, "malformed"),
        (f"t={NOW}", BODY, NOW, "malformed"),
        (sign(BODY, secret="s3cret", timestamp=NOW), BODY, NOW + 301, "replay"),
        (sign(BODY, secret="s3cret", timestamp=NOW + 301), BODY, NOW, "replay"),
        (sign(BODY, secret="other", timestamp=NOW), BODY, NOW, "does not match"),
        (sign(BODY, secret="s3cret", timestamp=NOW), BODY + b" ", NOW, "does not match"),
    ],
)
def test_unproven_requests_are_refused_with_a_reason(header, body, now, message):
    with pytest.raises(SignatureError, match=message):
        verify(header, body, secrets=["s3cret"], now=now, tolerance_s=300)
