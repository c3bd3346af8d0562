"""Secrets never print: not in configuration errors, ``repr(Settings)``, database error texts or the dev banner.

The processes themselves (stderr, logs, ``/readyz``, ``/metrics``): tests/test_secrets_in_processes.py.
"""

from __future__ import annotations

import pytest

from shared.database import checked_dsns
from shared.secret import Dsn, Secret, SecretBytes, mask_dsn
from shared.settings import ConfigError, Settings
from tests.secret_words import BAD, GOOD, STRIPE_SECRETS, WEBHOOK_KEY, WHSEC, leaks
from webhooks.devstack import Dependencies, DevSupervisor, banner


@pytest.mark.parametrize(("name", "raw", "expected"), BAD)
def test_a_bad_secret_is_named_with_its_expected_form_never_quoted(name: str, raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ({name: raw})
    message = str(caught.value)
    assert message.startswith(f"{name} is invalid: expected ") and expected in message, message
    assert leaks(message) == []
    assert caught.value.__suppress_context__  # a traceback would not show the parser's own error either


def test_repr_of_settings_shows_no_secret_and_dsns_masked() -> None:
    dsns = "postgresql://app:AXOLOTL-db-2718@db:5432/shard0,postgres://app:AXO%2FLOTL@db2/shard1?sslmode=disable"
    settings = Settings.from_environ({**GOOD, "DATABASE_URLS": dsns})
    text = repr(settings) + str(settings) + f"{settings}"
    assert leaks(text) == [] and "ZEBRA" not in repr(settings.webhook_secrets)
    assert "Dsn('postgresql://app:***@db:5432/shard0')" in text
    assert "Dsn('postgres://app:***@db2/shard1?sslmode=disable')" in text
    assert settings.webhook_secrets == (SecretBytes(WEBHOOK_KEY),)
    assert settings.database_urls[1].reveal().endswith("AXO%2FLOTL@db2/shard1?sslmode=disable")
    assert [token.reveal() for token in settings.api_tokens] == ["PANGOLIN-api-4417", "NARWHAL-api-9902"]


def test_stripe_secrets_are_held_as_their_literal_text_and_never_print() -> None:
    """Stripe keys its HMAC with the whole ``whsec_…`` text: kept as it is, not base64-decoded."""
    settings = Settings.from_environ(GOOD)
    assert [secret.reveal() for secret in settings.stripe_webhook_secrets] == list(STRIPE_SECRETS)
    assert leaks(repr(settings) + repr(settings.stripe_webhook_secrets)) == []
    assert Settings.from_environ({}).stripe_webhook_secrets == ()  # optional: the endpoint says not configured


@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgresql://app:pw@db:5432/shard0", "postgresql://app:***@db:5432/shard0"),
    ("postgresql://postgres@127.0.0.1:5432/webhooks_shard0", "postgresql://postgres@127.0.0.1:5432/webhooks_shard0"),
    ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
    ("postgresql://app:p@ss:w@rd@db/x", "postgresql://app:***@db/x"),
    ("postgresql://app@db/x?sslmode=require&password=pw", "postgresql://app@db/x?sslmode=require&password=***"),
    ("postgresql://app@db/x?sslpassword=pw&pass%77ord=pw2", "postgresql://app@db/x?sslpassword=***&pass%77ord=***"),
    ("postgresql://app/x?password=pw@db", "postgresql://app/x?password=***"),
    ("app:pw@db/x", "***"),
])
def test_a_dsn_is_shown_with_its_password_masked(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked
    assert repr(Dsn(dsn)) == f"Dsn({masked!r})"


def test_secrets_compare_by_value_and_kind_and_never_print() -> None:
    assert Secret("QUOKKA-1") == Secret("QUOKKA-1") != Secret("QUOKKA-2")
    assert Secret("postgresql://db/x") != Dsn("postgresql://db/x")
    assert {repr(Secret("QUOKKA-1")), str(Secret("QUOKKA-1")), f"{SecretBytes(WEBHOOK_KEY)}"} == {
        "Secret('***')", "SecretBytes('***')"}


def test_a_dsn_scrubs_its_password_from_an_error_text() -> None:
    dsn = Dsn("postgresql://app:AXOLOTL%2Fpw@db:5432/shard0")
    text = f"could not connect with {dsn.reveal()}: password AXOLOTL/pw (AXOLOTL%2Fpw) refused"
    assert dsn.scrub(text) == "could not connect with postgresql://app:***@db:5432/shard0: password *** (***) refused"


def test_a_dsn_asyncpg_would_misread_is_refused_before_any_pool_masked() -> None:
    """A Settings built in code skips from_environ: open_database checks each DSN itself."""
    assert checked_dsns(["postgresql://app@db/x", Dsn("postgresql://app:ok@db/y")])[0] == Dsn("postgresql://app@db/x")
    with pytest.raises(ConfigError) as caught:
        checked_dsns([Dsn("postgresql://app@db/x"), Dsn("postgresql://app:AXOLOTL?x@db:5432/y")])
    assert str(caught.value).startswith("DATABASE_URLS: shard1 (postgresql://app:***@db:5432/y) ")
    assert leaks(str(caught.value)) == []


def test_the_dev_banner_masks_a_dsn_and_names_secrets_from_the_environment() -> None:
    env = {"WEBHOOK_MODE": "kafka", "WEBHOOK_SECRETS": WHSEC, "API_TOKENS": "dev-api-generated",
           "STRIPE_WEBHOOK_SECRETS": STRIPE_SECRETS[0]}
    supervisor = DevSupervisor(env, Settings())
    supervisor.urls.update(ingest="http://127.0.0.1:8000", api="http://127.0.0.1:3000")
    deps = Dependencies((Dsn("postgresql://app:AXOLOTL@db:5432/shard0"), Dsn("postgresql://postgres@127.0.0.1:1/s1")),
                        "127.0.0.1:9092", ("kafka",))
    text = banner(supervisor, deps, supplied={"WEBHOOK_SECRETS", "DATABASE_URLS", "STRIPE_WEBHOOK_SECRETS"})
    assert leaks(text) == []
    assert "  STRIPE_WEBHOOK_SECRETS=$STRIPE_WEBHOOK_SECRETS" in text  # the caller's own: by name only
    generated = banner(supervisor, deps, supplied={"WEBHOOK_SECRETS", "DATABASE_URLS"})
    assert f"  STRIPE_WEBHOOK_SECRETS={STRIPE_SECRETS[0]}" in generated  # a dev secret: shown, like WEBHOOK_SECRETS
    assert "  shard0   postgresql://app:***@db:5432/shard0" in text
    assert "  shard1   postgresql://postgres@127.0.0.1:1/s1" in text  # embedded: shown whole, as before
    assert "  WEBHOOK_SECRETS=$WEBHOOK_SECRETS" in text and "API_TOKENS=dev-api-generated" in text  # generated
