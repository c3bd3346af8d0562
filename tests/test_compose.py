"""docker-compose.yml and the Dockerfile, read against the processes' real settings (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.settings import Settings, environment_variables

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: spec for name, spec in SERVICES.items() if spec.get("image") == "payment-webhooks:latest"}


def _env(spec: dict) -> dict[str, str]:
    return {key: str(value) for key, value in (spec.get("environment") or {}).items()}


def test_every_app_variable_is_a_real_setting_with_a_valid_value() -> None:
    known = environment_variables()
    for name, spec in APP_SERVICES.items():
        env = _env(spec)
        assert set(env) <= set(known), (name, set(env) - set(known))
        concrete = {k: v for k, v in env.items() if "${" not in v}  # secrets come from the caller's shell
        Settings.from_environ(concrete)  # raises on a malformed value


def test_processes_and_profiles() -> None:
    commands = {name: spec["command"] for name, spec in APP_SERVICES.items()}
    assert commands["api"] == ["python", "-m", "api"]
    assert commands["workers"] == ["python", "-m", "workers"]
    assert commands["migrate"] == ["webhooks", "migrate"] and commands["topics"] == ["webhooks", "topics", "create"]
    for mode in ("kafka", "http", "grpc"):
        ingest = SERVICES[f"ingest-{mode}"]
        assert ingest["profiles"] == [mode] and _env(ingest)["WEBHOOK_MODE"] == mode
        assert ingest["command"] == ["python", "-m", "ingest"]
    assert SERVICES["kafka"]["profiles"] == ["kafka"] and SERVICES["workers"]["profiles"] == ["kafka"]
    assert "deploy" not in SERVICES["workers"] and "container_name" not in SERVICES["workers"]  # --scale workers=N
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_dependencies_and_health_checks_point_at_real_ports() -> None:
    for name, spec in APP_SERVICES.items():
        for dependency in spec.get("depends_on", {}):
            assert dependency in SERVICES, (name, dependency)
    defaults = Settings()
    ports = {"api": defaults.api_port, "ingest-kafka": defaults.ingest_port, "workers": defaults.workers_port}
    for name, port in ports.items():
        test = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in test, name
    env = _env(APP_SERVICES["api"])
    assert env["BIND_HOST"] == "0.0.0.0" and env["API_BASE_URL"] == f"http://api:{defaults.api_port}"
    shards = Settings.from_environ({"DATABASE_URLS": env["DATABASE_URLS"]}).database_urls
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert all(re.search(rf"CREATE DATABASE {url.reveal().rsplit('/', 1)[1]};", init) for url in shards)


def test_the_dockerfile_ships_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("ingest", "api", "workers", "shared", "webhooks"):
        assert f"COPY {package} {package}" in dockerfile
    assert "pip install --no-cache-dir ." in dockerfile and "BIND_HOST=0.0.0.0" in dockerfile
