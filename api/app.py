"""The api's HTTP application: probes now; internal updates and public reads build on it."""

from __future__ import annotations

from functools import partial

from quart_trio import QuartTrio

from shared.database import Database
from shared.probes import probes_blueprint
from shared.settings import Settings


def create_app(settings: Settings, database: Database) -> QuartTrio:
    app = QuartTrio(__name__)
    checks = {f"shard{index}": partial(database.ping, index) for index in range(database.shard_count)}
    app.register_blueprint(probes_blueprint(checks))
    return app
