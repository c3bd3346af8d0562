"""The ingest HTTP application: probes now; the webhook endpoints build on it."""

from __future__ import annotations

from quart_trio import QuartTrio

from shared.probes import Check, probes_blueprint


def create_app(checks: dict[str, Check]) -> QuartTrio:
    app = QuartTrio(__name__)
    app.register_blueprint(probes_blueprint(checks))
    return app
