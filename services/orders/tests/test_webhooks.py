import pytest

from vuonminh.orders.webhooks import SignatureError, sign, verify

BODY = b'{"order_id": "TT-1"}'
NOW = 1_795_000_000


def test_a_fresh_correct_signature_passes():
    verify(sign(BODY, secret="s3cret", timestamp=NOW), BODY, secret="s3cret", now=NOW + 10, tolerance_s=300)


def test_any_of_several_v1_values_may_match_during_secret_rotation():
    good = sign(BODY, secret="new", timestamp=NOW).split("v1=")[1]
    header = f"t={NOW},v1={'0' * 64},v1={good}"
    verify(header, BODY, secret="new", now=NOW, tolerance_s=300)


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
        verify(header, body, secret="s3cret", now=now, tolerance_s=300)
