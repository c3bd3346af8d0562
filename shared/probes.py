"""``/healthz``, ``/readyz`` and ``/metrics`` for every service, as one Quart blueprint.

Alive means the process answers. Ready means each dependency answered a cheap
check within a short deadline; the body says which did not, so an operator sees
why a process is held out of rotation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response
from quart_trio import QuartTrio

from shared.logs import get_logger

log = get_logger(__name__)

Check = Callable[[], Awaitable[None]]
CHECK_DEADLINE_SECONDS = 2.0


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Run every check concurrently; a check is "ok" unless it raised or timed out."""
    results: dict[str, str] = {}

    async def one(name: str, check: Check) -> None:
        try:
            with trio.fail_after(CHECK_DEADLINE_SECONDS):
                await check()
            results[name] = "ok"
        except trio.TooSlowError:
            results[name] = "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            results[name] = f"{type(exc).__name__}: {exc}"[:200]

    async with trio.open_nursery() as nursery:
        for name, check in checks.items():
            nursery.start_soon(one, name, check)
    return results


def probes_blueprint(checks: Mapping[str, Check]) -> Blueprint:
    blueprint = Blueprint("probes", __name__)

    @blueprint.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @blueprint.get("/readyz")
    async def readyz() -> tuple[dict[str, object], int]:
        results = await run_checks(checks)
        ready = all(result == "ok" for result in results.values())
        if not ready:
            log.warning("not ready", checks=results)
        return {"status": "ready" if ready else "not ready", "checks": results}, 200 if ready else 503

    @blueprint.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return blueprint


def probes_app(name: str, checks: Mapping[str, Check]) -> QuartTrio:
    """An app that only serves the probes (for processes with no HTTP API of their own)."""
    app = QuartTrio(name)
    app.register_blueprint(probes_blueprint(checks))
    return app
