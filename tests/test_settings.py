import subprocess
import sys

import pytest

from shared.settings import ConfigError, Dsn, Secret, SecretBytes, Settings, environment_variables

GOOD_SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"


def test_defaults_match_the_spec() -> None:
    settings = Settings.from_environ({})
    assert settings.webhook_mode == "kafka"
    assert settings.api_base_url == "http://localhost:3000"
    assert settings.api_grpc_target == "localhost:50051"
    assert (settings.ingest_port, settings.api_port, settings.api_grpc_port) == (8000, 3000, 50051)
    assert settings.api_retry_attempts == 3
    assert settings.api_retry_base_delay_seconds == pytest.approx(0.1)
    assert settings.api_retry_max_delay_seconds == pytest.approx(5.0)
    assert settings.api_timeout_seconds == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("raw", "seconds"), [("10s", 10.0), ("100ms", 0.1), ("1.5", 1.5), ("2m", 120.0), (" 250ms ", 0.25)]
)
def test_durations(raw: str, seconds: float) -> None:
    assert Settings.from_environ({"API_TIMEOUT": raw}).api_timeout_seconds == pytest.approx(seconds)


def test_lists_and_secrets_are_parsed() -> None:
    settings = Settings.from_environ(
        {
            "DATABASE_URLS": "postgresql://a/x, postgresql://b/y",
            "WEBHOOK_SECRETS": f"{GOOD_SECRET},{GOOD_SECRET}",
            "API_TOKENS": "token-one-1,token-two-2",
            "INTERNAL_TOKEN": "internal-token",
            "WEBHOOK_MODE": "GRPC",
        }
    )
    assert settings.database_urls == (Dsn("postgresql://a/x"), Dsn("postgresql://b/y"))
    assert settings.webhook_secrets == (SecretBytes(b"0123456789abcdef01234567"),) * 2
    assert settings.api_tokens == (Secret("token-one-1"), Secret("token-two-2"))
    assert settings.webhook_mode == "grpc"
    assert "internal-token" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("API_TIMEOUT", "abc"),
        ("API_RETRY_ATTEMPTS", "0"),
        ("API_RETRY_ATTEMPTS", "three"),
        ("WEBHOOK_MODE", "smtp"),
        ("DATABASE_URLS", "mysql://x"),
        ("WEBHOOK_SECRETS", "plain-secret"),
        ("WEBHOOK_SECRETS", "whsec_!!!notbase64"),
        ("API_BASE_URL", "localhost:3000"),
        ("INGEST_PORT", "70000"),
        ("INTERNAL_TOKEN", "short"),
        ("LOG_LEVEL", "loud"),
        ("API_BATCH_MAX", "513"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    # a secret's value is not quoted (tests/test_secrets.py); any other value is
    secret = name in ("DATABASE_URLS", "WEBHOOK_SECRETS", "INTERNAL_TOKEN")
    with pytest.raises(ConfigError, match=rf"^{name}{'' if secret else '=.*'} is invalid: expected "):
        Settings.from_environ({name: raw})


@pytest.mark.parametrize(("name", "expected"),
                         [("INGEST_PORT", "a TCP port"), ("API_RETRY_ATTEMPTS", "a whole number")])
def test_non_ascii_digits_are_refused_with_the_rule(name: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}=.* is invalid: expected {expected}"):
        Settings.from_environ({name: "\u00b2"})  # a digit to str.isdigit, not to int()


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="^DATABASE_URLS is required"):
        Settings.from_environ({}).require("database_urls")


def test_every_variable_is_in_the_readme_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name for name in environment_variables() if f"`{name}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("service", ["api", "ingest", "workers"])
def test_a_bad_value_exits_non_zero_with_one_clear_line(service: str) -> None:
    env = {"API_TIMEOUT": "abc", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", service], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: API_TIMEOUT='abc' is invalid: expected a duration such as 10s, 100ms, 1.5 or 2m"
    )
