"""Secrets that never print: ``Secret`` for tokens, ``SecretBytes`` for webhook keys, ``Dsn`` for database URLs.

A ``Secret``'s repr is ``Secret('***')``; a ``Dsn``'s is the DSN with its password
masked (``postgresql://app:***@db:5432/shard0``), which is what errors, banners and
reprs show. ``reveal()`` is called only where the value is used: an HMAC, an
``Authorization`` header, ``asyncpg.create_pool``.

A DSN asyncpg would misread — a password with an unencoded ``/``, ``?``, ``#`` or
``@`` — is refused up front (``dsn_problem``): asyncpg's own errors about such a DSN
quote the misread piece, which is then a piece of the password.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

T = TypeVar("T", str, bytes)


class _Hidden(Generic[T]):
    """A value that never shows itself in reprs, logs or tracebacks; ``reveal()`` it where it is used."""

    __slots__ = ("_value",)
    _value: T

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}('***')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Hidden) and type(other) is type(self) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Secret(_Hidden[str]):
    """A token: ``INTERNAL_TOKEN``, each of ``API_TOKENS``."""

    __slots__ = ()


class SecretBytes(_Hidden[bytes]):
    """A key: each of ``WEBHOOK_SECRETS``, decoded."""

    __slots__ = ()


class Dsn(Secret):
    """A PostgreSQL DSN: shown only with its password masked (``postgresql://app:***@db:5432/shard0``)."""

    __slots__ = ()

    def masked(self) -> str:
        return mask_dsn(self._value)

    def scrub(self, text: str) -> str:
        """``text`` (an error message, say) with this DSN masked and its password starred out."""
        text = text.replace(self._value, self.masked())
        for password in _dsn_passwords(self._value):
            text = text.replace(password, "***")
        return text

    def __repr__(self) -> str:
        return f"Dsn({self.masked()!r})"


_QUERY_FIELD = re.compile(r"([?&])([^=&#]*)=([^&#]*)")


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password masked; nothing at all of a value that is not a URL.

    The password is whatever lies between the first ``:`` after the user name and the
    *last* ``@`` (a generous reading: asyncpg's, up to the first ``@``, falls inside it),
    and the value of every ``password``/``sslpassword`` query field."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "***"
    rest = _QUERY_FIELD.sub(_mask_query_password, rest)
    userinfo, at, hosts = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{hosts}"
    return f"{scheme}://{rest}"


def _mask_query_password(match: re.Match[str]) -> str:
    separator, key, _ = match.groups()
    return f"{separator}{key}=***" if unquote(key).lower().endswith("password") else match[0]


def _dsn_passwords(dsn: str) -> list[str]:
    """Every form of the password(s) in ``dsn`` an error text could quote."""
    netloc = dsn.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    found = [netloc.partition("@")[0].partition(":")[2]] if "@" in netloc else []
    query = dsn.partition("?")[2].partition("#")[0]
    found += [value for key, value in parse_qsl(query, keep_blank_values=True) if key.lower().endswith("password")]
    return sorted({form for password in found for form in (password, unquote(password)) if form}, key=len,
                  reverse=True)


def dsn_problem(dsn: str) -> str | None:
    """Why ``dsn`` is not a DSN asyncpg reads as written, in words that never quote it; None if it is."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        return "is not a postgresql:// URL"
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises ValueError unless a number from 0 to 65535
        parse_qsl(parts.query, strict_parsing=bool(parts.query))
    except ValueError:
        return "does not parse as a URL (host:port, then key=value query fields)"
    if parts.netloc.count("@") > 1 or "@" in parts.path + parts.query + parts.fragment:
        return "has an @ outside its user:password@ part"
    return None
