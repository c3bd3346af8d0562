"""Stripe-Signature: what the official ``stripe`` package signs is accepted; anything tampered is not."""

from __future__ import annotations

import pytest
import stripe

from ingest.providers.stripe import Stripe, sign, verify_signature
from shared.errors import ProviderNotConfigured, Unauthorized
from tests.stripe_requests import TEST_STRIPE_SECRET, encode, stripe_event

NOW = 1_763_632_800
SECRETS = (b"whsec_an0ther0ldsecretstill0k", TEST_STRIPE_SECRET.encode())
BODY = encode(stripe_event("payment_intent.succeeded"))


def header(body: bytes = BODY, secret: str = TEST_STRIPE_SECRET, timestamp: int = NOW) -> bytes:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp).encode()


def test_the_official_package_s_signature_is_accepted_with_any_active_secret() -> None:
    verify_signature(SECRETS, header(), BODY, NOW)
    verify_signature(SECRETS, header(secret=SECRETS[0].decode()), BODY, NOW)


def test_our_signer_agrees_with_the_package_and_the_package_verifies_it() -> None:
    ours = sign(TEST_STRIPE_SECRET, NOW, BODY)
    assert ours.encode() == header()
    assert stripe.WebhookSignature.verify_header(BODY.decode(), ours, TEST_STRIPE_SECRET, tolerance=None)


def test_the_key_is_the_literal_whsec_text_not_its_base64_decoding() -> None:
    """Standard Webhooks decodes what follows whsec_; Stripe does not: the decoded key must not match."""
    secret = "whsec_" + "dGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg=="
    signed = header(secret=secret)
    verify_signature((secret.encode(),), signed, BODY, NOW)
    with pytest.raises(Unauthorized):
        verify_signature((b"test-secret-0123456789abcdef",), signed, BODY, NOW)


@pytest.mark.parametrize("tamper", ["secret", "body", "timestamp", "no v1", "v0 only", "stale", "future"])
def test_tampered_requests_are_refused(tamper: str) -> None:
    body, now, signed = BODY, NOW, header()
    if tamper == "secret":
        signed = header(secret="whsec_notoneofoursecretsatall")
    elif tamper == "body":
        body = BODY.replace(b"4999", b"4998")
    elif tamper == "timestamp":  # the signature of another moment under this moment's t
        signed = b"t=" + str(NOW + 1).encode() + b"," + header().split(b",", 1)[1]
        now = NOW + 1
    elif tamper == "no v1":
        signed = signed.split(b",")[0]
    elif tamper == "v0 only":
        signed = signed.replace(b"v1=", b"v0=")
    elif tamper == "stale":
        now = NOW + 301
    elif tamper == "future":
        now = NOW - 301
    with pytest.raises(Unauthorized):
        verify_signature(SECRETS, signed, body, now)


def test_several_v1_entries_match_if_one_does_and_the_tolerance_is_inclusive() -> None:
    good = header().split(b",")[1]
    verify_signature(SECRETS, b"t=%d,v1=%s,v0=ff,%s" % (NOW, b"00" * 32, good), BODY, NOW + 300)


@pytest.mark.parametrize("value", [
    b"", b"v1=abc", b"t=1,t=2,v1=abc", b"t=abc,v1=abc", b"t=-5,v1=abc", b"t=1234567890123,v1=abc",
    b"t=%d," % NOW + b",".join([b"v1=00"] * 17), b"t=%d,v1=" % NOW + b"a" * 5000, "t=١٢٣,v1=a".encode(),
])
def test_malformed_or_oversized_headers_are_refused_before_any_hmac(value: bytes) -> None:
    with pytest.raises(Unauthorized):
        verify_signature(SECRETS, value or None, BODY, NOW)


def test_without_secrets_the_provider_says_it_is_not_configured() -> None:
    with pytest.raises(ProviderNotConfigured):
        Stripe(()).verify({b"stripe-signature": header()}, BODY, NOW)
    Stripe(SECRETS).verify({b"stripe-signature": header()}, BODY, NOW)
