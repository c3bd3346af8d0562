"""The process runner's exit: bad configuration, however deeply nurseries wrapped it, is one line."""

from __future__ import annotations

from shared.listening import PortInUse
from shared.service import configuration_error
from shared.settings import ConfigError


def test_a_taken_port_in_nested_groups_is_named_by_the_process_port_variable() -> None:
    error = ExceptionGroup("serve_http", [ExceptionGroup("serve", [PortInUse("127.0.0.1", 8001)])])
    assert configuration_error(error, "WORKERS_PORT") == (
        "WORKERS_PORT=8001 is already in use on 127.0.0.1 (set another port, or 0 for a free one)")


def test_a_config_error_keeps_its_own_message() -> None:
    error = ExceptionGroup("serve", [ConfigError("API_GRPC_PORT=50051 could not be bound")])
    assert configuration_error(error, "API_PORT") == "API_GRPC_PORT=50051 could not be bound"


def test_a_crash_alongside_is_a_crash() -> None:
    error = ExceptionGroup("serve", [PortInUse("127.0.0.1", 8001), RuntimeError("boom")])
    assert configuration_error(error, "WORKERS_PORT") is None
