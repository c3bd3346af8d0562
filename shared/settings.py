"""Configuration: every environment variable, parsed once at start into a frozen object.

Only a process's ``main`` reads ``os.environ``; everything below it receives a
``Settings``. A bad value raises ``ConfigError`` whose message names the variable
and the expected form, so the process can exit with one clear line.

Secrets (webhook secrets, tokens, DSNs) are held as ``Secret`` (``shared.secret``),
so ``repr(settings)`` shows none of them; ``reveal()`` is called only where a value
is used. An error about a secret variable names the variable and the expected form,
never the value (a DSN is shown with its password masked).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from shared.secret import Dsn, Secret, SecretBytes, dsn_problem

Mode = Literal["kafka", "http", "grpc"]
MODES: tuple[Mode, ...] = ("kafka", "http", "grpc")
Assignor = Literal["range", "roundrobin", "cooperative-sticky"]
ASSIGNORS: tuple[Assignor, ...] = ("range", "roundrobin", "cooperative-sticky")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


# --- parsers: raw text -> value, raising ValueError with the expected form -------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration_seconds(raw: str) -> float:
    match = _DURATION.match(raw)
    if not match:
        raise ValueError("a duration such as 10s, 100ms, 1.5 or 2m")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


MAX_NEXT_CALL_AFTER_SECONDS = 10.0


def parse_next_call_after(raw: str) -> float:
    """A wait that must stay short of a call's timeout to mean anything (a 400-digit value is inf)."""
    seconds = parse_duration_seconds(raw)
    if seconds > MAX_NEXT_CALL_AFTER_SECONDS:
        raise ValueError(f"a duration of at most {MAX_NEXT_CALL_AFTER_SECONDS:g}s, such as 100ms or 0")
    return seconds


def _is_whole_number(raw: str) -> bool:
    """ASCII digits only: ``str.isdigit`` alone admits "²", which ``int()`` refuses."""
    text = raw.strip()
    return text.isascii() and text.isdigit()


def parse_positive_int(raw: str) -> int:
    if not _is_whole_number(raw) or int(raw) < 1:
        raise ValueError("a whole number ≥ 1")
    return int(raw)


MAX_API_BATCH = 512  # × 8 KiB per item: a batch stays within gRPC's default 4 MiB message


def parse_api_batch_max(raw: str) -> int:
    value = parse_positive_int(raw)
    if value > MAX_API_BATCH:
        raise ValueError(f"a whole number from 1 to {MAX_API_BATCH} (a batch must fit gRPC's 4 MiB message)")
    return value


def parse_port(raw: str) -> int:
    if not _is_whole_number(raw) or not 0 <= int(raw) <= 65535:
        raise ValueError("a TCP port from 0 to 65535")
    return int(raw)


def parse_mode(raw: str) -> Mode:
    value = raw.strip().lower()
    if value not in MODES:
        raise ValueError("one of kafka, http, grpc")
    return value


def _items(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


DSN_FORM = "comma-separated postgresql:// DSNs, one per shard, any @ : / ? # in a password percent-encoded"


def parse_dsn_list(raw: str) -> tuple[Dsn, ...]:
    dsns = [Dsn(item) for item in _items(raw)]
    if not dsns:
        raise ValueError(DSN_FORM)
    for shard, dsn in enumerate(dsns):
        if (problem := dsn_problem(dsn.reveal())) is not None:
            raise ValueError(f"{DSN_FORM}; shard{shard} {_shown_dsn(dsn)} {problem}")
    return tuple(dsns)


def _shown_dsn(dsn: Dsn) -> str:
    masked = dsn.masked()
    return "(not shown)" if masked == "***" else f"({masked})"


WHSEC_FORM = "comma-separated whsec_<base64> secrets of at least 16 bytes"


def parse_webhook_secrets(raw: str) -> tuple[SecretBytes, ...]:
    items = _items(raw)
    if not items:
        raise ValueError(WHSEC_FORM)
    return tuple(SecretBytes(_decode_whsec(item, f"item {n} of {len(items)}")) for n, item in enumerate(items, 1))


def _decode_whsec(item: str, which: str) -> bytes:
    body = item.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        key = b""
    if not item.startswith("whsec_") or len(key) < 16:
        raise ValueError(f"{WHSEC_FORM} ({which} is not)")
    return key


STRIPE_FORM = "comma-separated Stripe signing secrets whsec_… of at least 16 characters after whsec_"


def parse_stripe_secrets(raw: str) -> tuple[Secret, ...]:
    """Stripe keys its HMAC with the literal ``whsec_…`` text (not base64-decoded, unlike Standard
    Webhooks): kept whole as a ``Secret``, checked only for its form."""
    items = _items(raw)
    bad = [n for n, item in enumerate(items, 1)
           if not item.startswith("whsec_") or len(item) < 22 or not item.isascii() or not item.isprintable()]
    if not items or bad:
        raise ValueError(STRIPE_FORM + (f" (item {bad[0]} of {len(items)} is not)" if bad else ""))
    return tuple(Secret(item) for item in items)


def parse_token(raw: str) -> Secret:
    if len(raw.strip()) < 8:
        raise ValueError("a token of at least 8 characters")
    return Secret(raw.strip())


def parse_token_list(raw: str) -> tuple[Secret, ...]:
    items = _items(raw)
    short = [n for n, item in enumerate(items, 1) if len(item) < 8]
    if not items or short:
        which = f" (item {short[0]} of {len(items)} is not)" if short else ""
        raise ValueError(f"comma-separated bearer tokens of at least 8 characters{which}")
    return tuple(Secret(item) for item in items)


def parse_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("an http:// or https:// URL")
    return raw.rstrip("/")


def parse_text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("a non-empty value")
    return raw.strip()


def parse_writer(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("batch", "direct"):
        raise ValueError("batch (per-shard writer actor) or direct (one transaction per request)")
    return value


def parse_encoding(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("json", "protobuf"):
        raise ValueError("json or protobuf")
    return value


def parse_assignor(raw: str) -> Assignor:
    value = raw.strip().lower()
    if value not in ASSIGNORS:
        raise ValueError("range, roundrobin (eager) or cooperative-sticky (incremental)")
    return value


def parse_log_level(raw: str) -> str:
    level = raw.strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("one of debug, info, warning, error")
    return level


# --- the settings object ---------------------------------------------------------------


def _env(name: str, parse: Callable[[str], Any], default: Any = None, *, secret: bool = False) -> Any:
    """A dataclass field read from environment variable ``name``; a secret one's value is never quoted."""
    return dataclasses.field(default=default, metadata={"env": name, "parse": parse, "secret": secret})


@dataclasses.dataclass(frozen=True)
class Settings:
    webhook_mode: Mode = _env("WEBHOOK_MODE", parse_mode, "kafka")
    database_urls: tuple[Dsn, ...] = _env("DATABASE_URLS", parse_dsn_list, (), secret=True)
    kafka_bootstrap_servers: str = _env("KAFKA_BOOTSTRAP_SERVERS", parse_text, "localhost:9092")
    topic_partitions: int = _env("TOPIC_PARTITIONS", parse_positive_int, 6)
    topic_prefix: str = _env("TOPIC_PREFIX", parse_text, "")
    webhook_secrets: tuple[SecretBytes, ...] = _env("WEBHOOK_SECRETS", parse_webhook_secrets, (), secret=True)
    stripe_webhook_secrets: tuple[Secret, ...] = _env("STRIPE_WEBHOOK_SECRETS", parse_stripe_secrets, (),
                                                      secret=True)
    internal_token: Secret | None = _env("INTERNAL_TOKEN", parse_token, secret=True)
    api_tokens: tuple[Secret, ...] = _env("API_TOKENS", parse_token_list, (), secret=True)
    api_base_url: str = _env("API_BASE_URL", parse_url, "http://localhost:3000")
    api_grpc_target: str = _env("API_GRPC_TARGET", parse_text, "localhost:50051")
    api_encoding: str = _env("API_ENCODING", parse_encoding, "json")
    api_timeout_seconds: float = _env("API_TIMEOUT", parse_duration_seconds, 10.0)
    api_retry_attempts: int = _env("API_RETRY_ATTEMPTS", parse_positive_int, 3)
    api_retry_base_delay_seconds: float = _env("API_RETRY_BASE_DELAY", parse_duration_seconds, 0.1)
    api_retry_max_delay_seconds: float = _env("API_RETRY_MAX_DELAY", parse_duration_seconds, 5.0)
    api_batch_max: int = _env("API_BATCH_MAX", parse_api_batch_max, 128)
    api_calls_in_flight: int = _env("API_CALLS_IN_FLIGHT", parse_positive_int, 2)
    api_next_call_after_seconds: float = _env("API_NEXT_CALL_AFTER", parse_next_call_after, 0.1)
    breaker_failure_threshold: int = _env("BREAKER_FAILURE_THRESHOLD", parse_positive_int, 5)
    breaker_reset_timeout_seconds: float = _env("BREAKER_RESET_TIMEOUT", parse_duration_seconds, 30.0)
    breaker_retry_after_spread_seconds: float = _env("BREAKER_RETRY_AFTER_SPREAD", parse_duration_seconds, 5.0)
    bind_host: str = _env("BIND_HOST", parse_text, "127.0.0.1")
    ingest_port: int = _env("INGEST_PORT", parse_port, 8000)
    api_port: int = _env("API_PORT", parse_port, 3000)
    api_grpc_port: int = _env("API_GRPC_PORT", parse_port, 50051)
    workers_port: int = _env("WORKERS_PORT", parse_port, 8001)
    api_writer: str = _env("API_WRITER", parse_writer, "batch")
    api_writer_max_batch: int = _env("API_WRITER_MAX_BATCH", parse_positive_int, 256)
    kafka_session_timeout_seconds: float = _env("KAFKA_SESSION_TIMEOUT", parse_duration_seconds, 10.0)
    kafka_assignor: Assignor = _env("KAFKA_ASSIGNOR", parse_assignor, "range")
    worker_mailbox_size: int = _env("WORKER_MAILBOX_SIZE", parse_positive_int, 2000)
    worker_max_batch: int = _env("WORKER_MAX_BATCH", parse_positive_int, 1000)
    worker_max_restarts: int = _env("WORKER_MAX_RESTARTS", parse_positive_int, 5)
    worker_not_found_window_seconds: float = _env("WORKER_NOT_FOUND_WINDOW", parse_duration_seconds, 5.0)
    worker_batch_timeout_seconds: float = _env("WORKER_BATCH_TIMEOUT", parse_duration_seconds, 30.0)
    shutdown_grace_seconds: float = _env("SHUTDOWN_GRACE", parse_duration_seconds, 10.0)
    log_level: str = _env("LOG_LEVEL", parse_log_level, "info")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Parse every known variable; unknown variables are ignored."""
        values = {}
        for field in dataclasses.fields(cls):
            name = field.metadata["env"]
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[field.name] = field.metadata["parse"](raw)
            except ValueError as exc:  # from None: the parser's own cause may quote the value
                shown = name if field.metadata["secret"] else f"{name}={raw!r}"
                raise ConfigError(f"{shown} is invalid: expected {exc}") from None
        return cls(**values)

    def require(self, *names: str, because: str = "for this process") -> Settings:
        """Fail unless the given fields are set; a service calls this for what it needs."""
        for name in names:
            if not getattr(self, name):
                env = _field(name).metadata["env"]
                raise ConfigError(f"{env} is required {because} (see README: Configuration)")
        return self

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def topic(self, name: str) -> str:
        """The broker-side name of a logical topic (a prefix isolates test runs and tenants)."""
        return f"{self.topic_prefix}{name}"


def _field(name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(Settings) if f.name == name)


def environment_variables() -> dict[str, str]:
    """Variable name → settings field name; used by the README table test."""
    return {f.metadata["env"]: f.name for f in dataclasses.fields(Settings)}
