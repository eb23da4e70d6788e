"""topup-guard: worker | topics | recon report | demo | operators' tools."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from streams.config import ConfigError, Settings, load_settings
from streams.logs import configure as configure_logs


def _topology(settings: Settings, args: argparse.Namespace) -> int:
    from streams import topology
    from streams.codecs import default_catalog
    from streams.metrics import Metrics

    graph = topology.build(settings, default_catalog(), Metrics())
    if args.mermaid:
        print(topology.as_mermaid(graph))
    elif args.json:
        print(topology.as_json(graph))
    else:
        print(topology.as_table(graph))
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.admin import ensure_reachable
    from streams.codecs import default_catalog
    from streams.confluent import attach_registry
    from streams.domain.risk.rules import RuleFileError
    from streams.metrics import Metrics
    from streams.registry import RegistryRefused
    from streams.runtime.changelog_topics import ReplicationRefused
    from streams.runtime.family_migration import UnmigratedState
    from streams.runtime.group_config import GroupSettingsRefused
    from streams.runtime.layout import TopicLayoutError
    from streams.runtime.worker import Worker
    from streams.topics import TOPICS
    from streams.topology import all_stages
    from streams.web import serve_in_background
    from streams.worker_config import runtime_config

    logging.getLogger().setLevel(args.loglevel.upper())
    catalog, metrics = default_catalog(), Metrics()
    try:
        attach_registry(catalog, settings, metrics, TOPICS)
    except RegistryRefused as exc:
        print(f"topup-guard: schema registration refused: {exc}", file=sys.stderr)
        return 2
    try:
        stages = all_stages(settings, catalog, metrics)
    except RuleFileError as exc:
        print(f"topup-guard: risk rules refused: {exc}", file=sys.stderr)
        return 2
    worker = Worker(runtime_config(settings), stages, catalog, metrics)

    def stop(*_: object) -> None:
        # The worker stops within its own bounds; this timer is the backstop for a client
        # call that holds the process anyway (a hung restore, a wedged close).
        worker.stop()
        backstop = threading.Timer(settings.shutdown_timeout_s, _exit_now)
        backstop.daemon = True
        backstop.start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    serve_in_background(worker, settings)
    # The application's check, with its settings' words for what is wrong (the runtime
    # would only fail on its first admin call).
    ensure_reachable(settings)
    try:
        worker.run()
    except (TopicLayoutError, UnmigratedState) as exc:
        print(f"topup-guard: refusing to start: {exc}", file=sys.stderr)
        return 2
    # What only the cluster can check.
    except (ConfigError, ReplicationRefused, GroupSettingsRefused) as exc:
        print(f"topup-guard: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


def _exit_now() -> None:
    logging.getLogger(__name__).error("shutdown overran its bound; exiting now")
    logging.shutdown()
    os._exit(1)


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from streams.admin import create_topics

    for report in create_topics(settings):
        detail = f" ({report.detail})" if report.detail else ""
        print(f"{report.outcome:8} {report.name}{detail}")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(settings, orders=args.orders, timeout_s=args.timeout)


def _recon_report(settings: Settings, args: argparse.Namespace) -> int:
    from streams.recon_report_cli import parse_since, report

    try:
        since = parse_since(args.since)
    except ValueError:
        print(f"topup-guard: --since {args.since!r} is neither an ISO date nor epoch ms",
              file=sys.stderr)
        return 2
    print(report(settings, since), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="topup-guard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a stream worker")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(run=_worker)

    topics = commands.add_parser("topics", help="manage the contract's topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    topic_commands.add_parser("create", help="create every topic, idempotently").set_defaults(
        run=_topics
    )

    topology = commands.add_parser(
        "topology", help="stages, inputs, outputs, stores, internal topics, co-partitioning")
    shape = topology.add_mutually_exclusive_group()
    shape.add_argument("--mermaid", action="store_true", help="as a mermaid flowchart")
    shape.add_argument("--json", action="store_true", help="as JSON")
    topology.set_defaults(run=_topology)

    recon = commands.add_parser("recon", help="reconciliation tools")
    recon_commands = recon.add_subparsers(dest="recon_command", required=True)
    recon_report = recon_commands.add_parser(
        "report", help="breaks by category and action, amounts at stake, match rate"
    )
    recon_report.add_argument("--since", help="ISO date/time (UTC) or epoch ms of detection")
    recon_report.set_defaults(run=_recon_report)

    demo = commands.add_parser("demo", help="run a worker on a generated workload, report")
    demo.add_argument("--orders", type=int, default=60)
    demo.add_argument("--timeout", type=float, default=120.0)
    demo.set_defaults(run=_demo)

    from streams.ops.commands import add_operator_commands

    add_operator_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logs()
        settings = load_settings()
    except ConfigError as exc:
        print(f"topup-guard: configuration error: {exc}", file=sys.stderr)
        return 2
    from confluent_kafka import KafkaException

    try:
        return args.run(settings, args)
    except (KafkaException, TimeoutError) as exc:
        print(f"topup-guard: Kafka at {settings.bootstrap_servers} did not answer: {exc}",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
