import pytest

from ingest.signatures import sign, verify
from shared.errors import Unauthorized

OLD, NEW = b"old-secret-0123456789", b"new-secret-0123456789"
BODY = b'{"a":1}'
NOW = 1_800_000_000


def test_valid_with_any_active_secret_and_any_listed_signature() -> None:
    verify([OLD, NEW], "msg_1", str(NOW), sign(NEW, "msg_1", NOW, BODY), BODY, NOW)
    both = f"v1,bm90LWl0 {sign(OLD, 'msg_1', NOW, BODY)}"
    verify([NEW, OLD], "msg_1", str(NOW), both, BODY, NOW)


@pytest.mark.parametrize(
    ("webhook_id", "timestamp", "signature", "body", "now"),
    [
        (None, str(NOW), sign(OLD, "m", NOW, BODY), BODY, NOW),  # missing id
        ("m", None, sign(OLD, "m", NOW, BODY), BODY, NOW),  # missing timestamp
        ("m", str(NOW), None, BODY, NOW),  # missing signature
        ("m", "yesterday", sign(OLD, "m", NOW, BODY), BODY, NOW),
        ("m", "\xb2", sign(OLD, "m", NOW, BODY), BODY, NOW),  # a digit to str.isdigit, not to int()
        ("m", str(NOW), sign(b"unknown-secret-01", "m", NOW, BODY), BODY, NOW),
        ("m", str(NOW), sign(OLD, "m", NOW, BODY), BODY + b" ", NOW),  # body changed
        ("other", str(NOW), sign(OLD, "m", NOW, BODY), BODY, NOW),  # id changed
        ("m", str(NOW), sign(OLD, "m", NOW, BODY).replace("v1,", "v2,"), BODY, NOW),
        ("m", str(NOW - 301), sign(OLD, "m", NOW - 301, BODY), BODY, NOW),  # replayed, too old
        ("m", str(NOW + 301), sign(OLD, "m", NOW + 301, BODY), BODY, NOW),  # from the future
    ],
)
def test_rejected(webhook_id: str | None, timestamp: str | None, signature: str | None, body: bytes, now: int) -> None:
    with pytest.raises(Unauthorized):
        verify([OLD], webhook_id, timestamp, signature, body, now)


def test_tolerance_is_inclusive_of_five_minutes() -> None:
    verify([OLD], "m", str(NOW - 300), sign(OLD, "m", NOW - 300, BODY), BODY, NOW)
    verify([OLD], "m", str(NOW + 300), sign(OLD, "m", NOW + 300, BODY), BODY, NOW)
