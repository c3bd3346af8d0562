"""The connection file ``webhooks dev`` leaves for the other commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from webhooks.connection_file import (
    FILE_VARIABLE,
    client_variables,
    command_environ,
    read_connection,
    remove_connection,
    write_connection,
)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_file_is_the_owners_only_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dev.json"
    write_connection(path, {"INGEST_PORT": "8123", "WEBHOOK_SECRETS": "whsec_abc"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    connection = read_connection(path, warn=pytest.fail)
    assert connection is not None
    assert connection.pid == os.getpid()
    assert connection.variables == {"INGEST_PORT": "8123", "WEBHOOK_SECRETS": "whsec_abc"}


def test_the_callers_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    write_connection(path, {"INGEST_PORT": "8123", "API_BASE_URL": "http://127.0.0.1:3123"})
    environ = command_environ({FILE_VARIABLE: str(path), "INGEST_PORT": "9000"}, warn=pytest.fail)
    assert environ["INGEST_PORT"] == "9000"
    assert environ["API_BASE_URL"] == "http://127.0.0.1:3123"


def test_a_file_left_by_a_dead_dev_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    write_connection(path, {"INGEST_PORT": "8123"}, pid=_dead_pid())
    warnings: list[str] = []
    assert command_environ({FILE_VARIABLE: str(path)}, warn=warnings.append) == {FILE_VARIABLE: str(path)}
    assert len(warnings) == 1
    assert "is not running" in warnings[0]


@pytest.mark.parametrize("content", ["", "not json", "[]", json.dumps({"pid": "x", "variables": {}}),
                                     json.dumps({"variables": {}})])
def test_a_file_that_is_not_ours_is_ignored(tmp_path: Path, content: str) -> None:
    path = tmp_path / "dev.json"
    path.write_text(content)
    assert command_environ({FILE_VARIABLE: str(path)}, warn=pytest.fail) == {FILE_VARIABLE: str(path)}


def test_no_file_no_change(tmp_path: Path) -> None:
    environ = {FILE_VARIABLE: str(tmp_path / "absent.json"), "INGEST_PORT": "1"}
    assert command_environ(environ, warn=pytest.fail) == environ


def test_a_secret_the_caller_supplied_is_not_copied_into_the_file() -> None:
    dev_env = {"WEBHOOK_SECRETS": "whsec_theirs", "API_TOKENS": "dev-generated", "DATABASE_URLS": "postgresql://u:pw@h/d",
               "INGEST_PORT": "8000", "PATH": "/usr/bin", "INTERNAL_TOKEN": "internal",
               "STRIPE_WEBHOOK_SECRETS": "whsec_stripe-theirs-0123456789"}
    written = client_variables(dev_env, supplied={"WEBHOOK_SECRETS": "whsec_theirs", "DATABASE_URLS": "x",
                                                  "INGEST_PORT": "8000",
                                                  "STRIPE_WEBHOOK_SECRETS": "whsec_stripe-theirs-0123456789"})
    assert written == {"API_TOKENS": "dev-generated", "INGEST_PORT": "8000"}
    generated = client_variables(dev_env, supplied={})  # a dev-generated Stripe secret is written for send-sample
    assert generated["STRIPE_WEBHOOK_SECRETS"] == "whsec_stripe-theirs-0123456789"


def test_only_the_writer_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    write_connection(path, {}, pid=os.getpid() + 1)  # another dev's
    remove_connection(path)
    assert path.exists()
    write_connection(path, {})
    remove_connection(path)
    assert not path.exists()
    remove_connection(path)  # already gone: fine


def test_a_reused_pid_is_not_the_writer(tmp_path: Path) -> None:
    """The file names its writer by pid and start time: a live process that got the pid is not it."""
    path = tmp_path / "dev.json"
    write_connection(path, {"INGEST_PORT": "8123"})
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "started": record["started"] - 3600}))  # our pid, another start
    warnings: list[str] = []
    assert read_connection(path, warn=warnings.append) is None
    assert "is not running" in warnings[0]


def test_an_existing_file_or_symlink_never_receives_the_secrets(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_connection(path, {"WEBHOOK_SECRETS": "whsec_abc"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    path.unlink()
    path.symlink_to(target)
    write_connection(path, {"WEBHOOK_SECRETS": "whsec_abc"})
    assert target.read_text() == "keep me" and not path.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.json", "elsewhere.txt"]  # no partial left
