"""``webhooks``: the command-line tool for people running the system.

    webhooks dev [--mode kafka|http|grpc] [--shards N]   the whole system, foreground
    webhooks deps [--shards N]                           only the embedded dependencies
    webhooks migrate                                     SQL migrations on every shard
    webhooks topics create|describe|scale --partitions N the Kafka topics of SPEC §6
    webhooks dlq list|replay [--reason R] [--limit N]    dead letters
    webhooks send-sample [--users N] [--provider P]      sign and post a sample stream (native or stripe)
    webhooks bench [SCENARIO ...]                        k6 benchmarks; tables in bench/
    webhooks soak [--mode kafka|http] [--minutes N] [--rate R]  steady load: RSS, CPU, p99 every 10 s; soak/
    webhooks soak --broker-only [--minutes N] [--rate R] the same Kafka traffic with no service of ours
    webhooks chaos [--scenario NAME ...] [--mode M ...]  fault scenarios, audited; tables in chaos/
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Sequence

import trio

from shared.errors import WebhookError
from shared.migrations import migrate_dsn
from shared.service import exception_leaves, load_settings
from shared.settings import MODES, Settings
from shared.topics import ALL_TOPICS, admin_client, create_topics, describe_topics, scale_topics
from webhooks.connection_file import command_environ, connection_path, read_connection
from webhooks.soak import SOAK_MODES


def _warn(message: str) -> None:
    print(f"webhooks: {message}", file=sys.stderr)


def client_settings(required: tuple[str, ...] = ()) -> Settings:
    """The settings of a command that talks to a running system: a running ``webhooks dev``'s
    connection file under the caller's environment (see ``webhooks.connection_file``)."""
    return load_settings(required, command_environ(os.environ, _warn))


def warn_if_dev_running() -> None:
    """Measurements share the CPU with a running ``webhooks dev``: say so before they start."""
    connection = read_connection(connection_path(os.environ), _warn)
    if connection is not None:
        _warn(f"webhooks dev (pid {connection.pid}) is running: its processes share the CPU with this "
              "measurement; stop it for figures worth comparing")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webhooks", description="Payment-webhook ingestion: operations.")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole system of one mode in the foreground")
    dev.add_argument("--mode", choices=MODES, default=None, help="default: $WEBHOOK_MODE or kafka")
    dev.add_argument("--shards", type=int, default=2, help="embedded PostgreSQL shard databases (default 2)")

    deps = commands.add_parser("deps", help="run only embedded PostgreSQL and the broker; print their addresses")
    deps.add_argument("--shards", type=int, default=2)

    commands.add_parser("migrate", help="apply SQL migrations to every shard in $DATABASE_URLS")

    topics = commands.add_parser("topics", help="Kafka topics: create | describe | scale --partitions N")
    topics.add_argument("action", choices=("create", "describe", "scale"))
    topics.add_argument("--partitions", type=int, help="scale: the new partition count of every topic")

    dlq = commands.add_parser("dlq", help="dead letters: list | replay")
    dlq.add_argument("action", choices=("list", "replay"))
    dlq.add_argument("--reason", help="only this dlq.reason (schema, not_found, invalid_transition, user_mismatch)")
    dlq.add_argument("--limit", type=int, help="at most this many records")

    sample = commands.add_parser("send-sample", help="sign and post a sample stream to a running system")
    sample.add_argument("--users", type=int, default=4)
    sample.add_argument("--provider", choices=("native", "stripe"), default="native",
                        help="native: /webhooks/payments/* (Standard Webhooks); stripe: /webhooks/stripe")
    sample.add_argument("--ingest-url", help="default: http://127.0.0.1:$INGEST_PORT")
    sample.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the final states to read back (default 30)")

    bench = commands.add_parser("bench", help="benchmarks with k6; writes bench/*.md")
    bench.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                       help="ceilings, ingest, workers, api-writes (default: all of them)")
    bench.add_argument("--duration", default="10s", help="k6 duration per variant (default 10s)")
    bench.add_argument("--vus", type=int, default=50, help="concurrent clients (default 50)")

    soak = commands.add_parser("soak", help="one mode under a steady load: RSS and p99 every 10 s; writes soak/")
    soak.add_argument("--mode", choices=SOAK_MODES, default="kafka",
                      help="kafka (default: ingest, api, two workers, the broker; soak/results.*) or http "
                           "(Procfile.http: ingest calling the api, no broker; soak/results-http.*)")
    soak.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    soak.add_argument("--rate", type=int, default=None,
                      help="webhooks/s (default: half the peak a 20 s flat-out probe of the same stack measures)")
    soak.add_argument("--broker-only", action="store_true",
                      help="the soak's Kafka traffic alone (no service of ours), at --rate (default 400)/s: "
                           "does the embedded broker slow down as it fills? (kafka mode only)")
    soak.set_defaults(usage_error=soak.error)  # cmd_soak refuses a combination argparse cannot express

    chaos = commands.add_parser("chaos", help="fault scenarios, audited for lost / duplicated / out-of-order events")
    chaos.add_argument("--scenario", action="append", default=[], metavar="NAME",
                       help="worker-kill, rebalance-storm, db-outage, broker-outage, api-outage, slow-api, poison "
                            "(repeatable; default: all)")
    chaos.add_argument("--mode", action="append", default=[], choices=MODES, help="repeatable; default: every mode")
    chaos.add_argument("--rate", type=float, default=120.0, help="webhooks/s offered (default 120)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
    except WebhookError as exc:
        print(f"webhooks {args.command}: {exc}", file=sys.stderr)
        code = 1
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        print(f"webhooks {args.command}: interrupted", file=sys.stderr)
        code = 130  # 128 + SIGINT, as a shell reports it
    raise SystemExit(code)


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C: a KeyboardInterrupt, alone or in trio's nursery groups beside tasks it cancelled, with
    no failure behind it — an error it interrupted the teardown of still shows its traceback."""
    leaves = list(exception_leaves(exc))
    return (any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves)
            and all(isinstance(leaf, KeyboardInterrupt | trio.Cancelled) and not _failure_behind(leaf)
                    for leaf in leaves))


def _failure_behind(exc: BaseException) -> bool:
    """Whether an ``Exception`` (a real failure, not a cancellation) was being handled when ``exc`` came."""
    seen: set[int] = set()
    behind = exc.__cause__ or exc.__context__
    while behind is not None and id(behind) not in seen:
        if isinstance(behind, Exception):
            return True
        seen.add(id(behind))
        behind = behind.__cause__ or behind.__context__
    return False


def cmd_dev(args: argparse.Namespace) -> int:
    from webhooks.devstack import run_dev_sync

    mode = args.mode or load_settings().webhook_mode
    return run_dev_sync(mode, args.shards)


def cmd_deps(args: argparse.Namespace) -> int:
    from webhooks.devstack import run_deps

    return trio.run(run_deps, args.shards)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = client_settings(("database_urls",))
    today = dt.datetime.now(dt.UTC).date()
    for index, url in enumerate(settings.database_urls):
        applied = asyncio.run(migrate_dsn(url.reveal(), today))
        print(f"shard{index}: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    settings = client_settings()
    admin = admin_client(settings.kafka_bootstrap_servers)
    names = [settings.topic(name) for name in ALL_TOPICS]
    if args.action == "scale":
        if not args.partitions:
            print("webhooks topics scale: --partitions N is required", file=sys.stderr)
            return 2
        for name, outcome in scale_topics(admin, names, args.partitions).items():
            print(f"{name}: {outcome}")
    if args.action == "create":
        for name, outcome in create_topics(admin, names, settings.topic_partitions).items():
            print(f"{name}: {outcome}")
    states = {state.name: state.partitions for state in describe_topics(admin, names)}
    for name in names:
        print(f"{name}: {states[name]} partitions" if name in states else f"{name}: missing")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from webhooks.bench.runner import SCENARIOS, run_bench

    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        print(f"webhooks bench: unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    warn_if_dev_running()
    return trio.run(run_bench, args.scenarios or list(SCENARIOS), args.vus, args.duration)


def cmd_dlq(args: argparse.Namespace) -> int:
    from webhooks.dlq import describe, read_letters, replay

    settings = client_settings()
    letters = list(read_letters(settings, args.reason, args.limit))
    if args.action == "list":
        for letter in letters:
            print(describe(letter))
        print(f"{len(letters)} dead letters")
    else:
        print(f"replayed {replay(settings, letters)} dead letters to their original topics")
    return 0


def cmd_send_sample(args: argparse.Namespace) -> int:
    from webhooks.sample import Sample, read_back, send_sample, send_stripe_sample

    stripe = args.provider == "stripe"
    settings = client_settings(("stripe_webhook_secrets" if stripe else "webhook_secrets", "api_tokens"))
    ingest_url = args.ingest_url or f"http://127.0.0.1:{settings.ingest_port}"
    secret = b"" if stripe else settings.webhook_secrets[0].reveal()
    sample = Sample(ingest_url, settings.api_base_url, secret, settings.api_tokens[0].reveal(),
                    settings.stripe_webhook_secrets[0].reveal() if stripe else "")
    expected = send_stripe_sample(sample, args.users, args.wait) if stripe else send_sample(sample, args.users)
    print(f"sent; reading the final states back from {settings.api_base_url} (up to {args.wait:.0f} s)")
    found = read_back(sample, expected, args.wait)
    for key, status in expected.items():
        shown = found.get(key, "missing")
        print(f"  {key}: expected {status}, found {shown}{'' if shown == status else '  <-- differs'}")
    matching = sum(found.get(key) == status for key, status in expected.items())
    print(f"{matching} of {len(expected)} states match" + ("" if matching == len(expected) else
                                                           "; see the api and workers logs"))
    return 0 if matching == len(expected) else 1


def cmd_chaos(args: argparse.Namespace) -> int:
    from webhooks.chaos.command import run_chaos_command
    from webhooks.chaos.faults import SCENARIO_NAMES

    unknown = set(args.scenario) - set(SCENARIO_NAMES)
    if unknown:
        print(f"webhooks chaos: unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIO_NAMES)}",
              file=sys.stderr)
        return 2
    warn_if_dev_running()
    return trio.run(run_chaos_command, args.scenario, args.mode, args.rate)


def cmd_soak(args: argparse.Namespace) -> int:
    from webhooks.soak.runner import RESULTS, run_soak

    if args.broker_only and args.mode != "kafka":
        args.usage_error(f"--broker-only sends kafka mode's broker traffic alone; --mode {args.mode} has no broker "
                         "(leave out --mode, or --broker-only)")  # exits 2 with the soak's usage
    if args.minutes <= 0 or (args.rate is not None and args.rate <= 0):
        print("webhooks soak: --minutes and --rate must be positive", file=sys.stderr)
        return 2
    if args.broker_only:
        from webhooks.soak.broker_control import run_broker_only

        return trio.run(run_broker_only, args.minutes, args.rate or 400)
    return trio.run(run_soak, args.minutes, args.rate, RESULTS, args.mode)


COMMANDS = {"dev": cmd_dev, "deps": cmd_deps, "migrate": cmd_migrate, "topics": cmd_topics, "bench": cmd_bench,
            "dlq": cmd_dlq, "send-sample": cmd_send_sample, "soak": cmd_soak, "chaos": cmd_chaos}


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
