import pytest

from ingest.signatures import sign
from ingest.signatures import verify as verify_bytes
from shared.errors import Unauthorized

OLD, NEW = b"old-secret-0123456789", b"new-secret-0123456789"
BODY = b'{"a":1}'
NOW = 1_800_000_000


def verify(secrets: list[bytes], webhook_id: str | None, timestamp: str | None, signature: str | None,
           body: bytes, now: float) -> None:
    """The headers as the UTF-8 octets they arrive as."""
    def octets(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    verify_bytes(secrets, octets(webhook_id), octets(timestamp), octets(signature), body, now)


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
        ("m", "9" * 400, sign(OLD, "m", NOW, BODY), BODY, NOW),  # past the float range: was a 500
        ("m", "0" * 13 + str(NOW), sign(OLD, "m", NOW, BODY), BODY, NOW),  # no timestamp has 23 digits
        ("m" * 256, str(NOW), sign(OLD, "m" * 256, NOW, BODY), BODY, NOW),  # id too long
        ("m", str(NOW), " ".join(["v1,AAAA"] * 16 + [sign(OLD, "m", NOW, BODY)]), BODY, NOW),  # 17 signatures
        ("m", str(NOW), "x" * 4100 + " " + sign(OLD, "m", NOW, BODY), BODY, NOW),  # header over 4 KiB
    ],
)
def test_rejected(webhook_id: str | None, timestamp: str | None, signature: str | None, body: bytes, now: int) -> None:
    with pytest.raises(Unauthorized):
        verify([OLD], webhook_id, timestamp, signature, body, now)


def test_tolerance_is_inclusive_of_five_minutes() -> None:
    verify([OLD], "m", str(NOW - 300), sign(OLD, "m", NOW - 300, BODY), BODY, NOW)
    verify([OLD], "m", str(NOW + 300), sign(OLD, "m", NOW + 300, BODY), BODY, NOW)


def test_a_non_ascii_id_is_verified_as_the_bytes_the_provider_signed() -> None:
    webhook_id = "msg_ü_日本"
    verify([OLD], webhook_id, str(NOW), sign(OLD, webhook_id, NOW, BODY), BODY, NOW)
    with pytest.raises(Unauthorized):  # the same text, other octets: not what was signed
        verify_bytes([OLD], webhook_id.encode("latin-1", errors="replace"), str(NOW).encode(),
                     sign(OLD, webhook_id, NOW, BODY).encode(), BODY, NOW)


def test_sixteen_signatures_are_still_checked() -> None:
    verify([OLD], "m", str(NOW), " ".join(["v1,AAAA"] * 15 + [sign(OLD, "m", NOW, BODY)]), BODY, NOW)
