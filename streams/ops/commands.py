"""The operators' subcommands of `topup-guard`: argument parsing and printing only.

Queries and actions live in their own modules (`streams.ops.freezes`, ...); each command
prints a human report, or JSON with `--json`, and exits non-zero with a clear message
when an operator action is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from streams.config import Settings
from streams.ops.scan import Progress

REFUSED = 2


def _progress(progress: Progress) -> None:
    print(f"  scanned {progress.records} records ({progress.rate:,.0f}/s, "
          f"{progress.elapsed_s:.1f} s)", file=sys.stderr)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)


def _refuse(message: str) -> int:
    print(f"topup-guard: refused: {message}", file=sys.stderr)
    return REFUSED


def _freeze_or_unfreeze(settings: Settings, args: argparse.Namespace, freeze: bool) -> int:
    from streams.ops.freezes import OperatorError, request

    try:
        command = request(settings, freeze, args.scope, args.what, args.by, args.reason,
                          int(time.time() * 1000), _progress)
    except OperatorError as exc:
        return _refuse(str(exc))
    verb = "freeze" if freeze else "unfreeze"
    human = (f"{verb} of {args.what} on {command['scope']} issued as {command['command_id']} "
             f"by {command['issued_by']}: {command['reason']}\n"
             "the control stage broadcasts it to every order partition and writes its audit "
             "record to topup.audit")
    _emit(args, command, human)
    return 0


def _freeze(settings: Settings, args: argparse.Namespace) -> int:
    return _freeze_or_unfreeze(settings, args, freeze=True)


def _unfreeze(settings: Settings, args: argparse.Namespace) -> int:
    return _freeze_or_unfreeze(settings, args, freeze=False)


def _freezes(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ops.freezes import active_freezes

    active = active_freezes(settings, progress=_progress)
    lines = [f"{len(active)} active freeze(s)"]
    for freeze in active:
        lines.append(f"  {freeze.scope:32} {freeze.what:8} since {_when(freeze.frozen_at)} "
                     f"by {freeze.frozen_by}: {freeze.reason} ({freeze.command_id})")
    _emit(args, [f.to_dict() for f in active], "\n".join(lines))
    return 0


def _trace(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ops.trace import trace_account, trace_order

    if (args.order_id is None) == (args.account is None):
        return _refuse("give an ORDER_ID or --account ID, not both or neither")
    if args.account is not None:
        account = trace_account(settings, args.account, _progress)
        if not account.entries:
            return _refuse(f"no ledger entry for account {args.account!r}")
        lines = [f"ledger of {account.account_id}: {len(account.entries)} entries"]
        for entry in account.entries:
            lines.append(
                f"  {_when(entry['created_at'])}  {entry['op']:9} {entry['amount_minor']:>10}"
                f"+{entry['bonus_minor']:<6} {entry['currency']} order {entry['order_id']} "
                f"({entry['reason']}) balance {entry['balance_after']}  {entry['entry_id']}")
        balance = ", ".join(f"{amount} {currency}" for currency, amount
                            in sorted(account.balance.items()))
        lines.append(f"balance: {balance}")
        _emit(args, account.to_dict(), "\n".join(lines))
        return 0
    trace = trace_order(settings, args.order_id, _progress)
    if not trace.found:
        return _refuse(f"no record of order {args.order_id!r} on any topic")
    lines = [f"chain of evidence for order {trace.order_id} ({len(trace.evidence)} records, "
             "in the order recorded; each with its own event time)"]
    for item in trace.evidence:
        correlation = f"  [corr {item.correlation_id}]" if item.correlation_id else ""
        lines.append(f"  {_when(item.at)}  {item.topic:24} {item.summary}{correlation}")
    if not any(item.kind == "CALLBACK" for item in trace.evidence):
        lines.append("  (no callback delivery for this order on topup.webhooks)")
    _emit(args, trace.to_dict(), "\n".join(lines))
    return 0


def _reviews(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ops.reviews import load_review_book

    cases = load_review_book(settings, _progress).open_cases()
    lines = [f"{len(cases)} open review case(s)"]
    for case in cases:
        lines.append(f"  {case.case_id}  order {case.order_id} ({case.provider or '-'}) "
                     f"opened {_when(case.opened_at)}: {case.reason}")
        lines.extend(f"      {key}: {value}" for key, value in sorted(case.evidence.items()))
    _emit(args, [case.to_dict() for case in cases], "\n".join(lines))
    return 0


def _review(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ops.freezes import OperatorError
    from streams.ops.reviews import decide

    try:
        event = decide(settings, args.case_id, args.decision, args.by, args.note,
                       int(time.time() * 1000), _progress)
    except OperatorError as exc:
        return _refuse(str(exc))
    human = (f"{event['type']} for order {event['order_id']} (case {args.case_id}) sent as "
             f"{event['event_id']} by {event['actor']}; audited on topup.audit")
    _emit(args, event, human)
    return 0


def _reverse(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ops.freezes import OperatorError
    from streams.ops.reversals import RefusedReversal, reverse

    try:
        request = reverse(settings, args.entry_id, args.by, args.reason,
                          int(time.time() * 1000), _progress)
    except RefusedReversal as exc:
        return _refuse(f"{exc} (refusal audited as {exc.audit['audit_id']})")
    except OperatorError as exc:
        return _refuse(str(exc))
    event = request.event
    human = (f"REVERSAL_REQUESTED of {args.entry_id} (order {event['order_id']}, account "
             f"{event['account_id']}, {request.audit['inputs']['amount_minor']}"
             f"+{request.audit['inputs']['bonus_minor']} {event['currency']}) sent as "
             f"{event['event_id']} by {event['actor']}: {event['reason']}\n"
             f"the order stage books REVERSAL {request.reversal_entry_id} once (the order "
             "becomes REVERSED) and audits it; audited on topup.audit")
    _emit(args, request.to_dict(), human)
    return 0


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    if args.what == "balances":
        return _rebuild_balances(settings, args)
    from streams.ops.freezes import OperatorError
    from streams.ops.rebuild import promote, rebuild

    stores = None
    if args.stores is not None:
        stores = [name.strip() for name in args.stores.split(",") if name.strip()]
        if not stores:
            return _refuse("--stores needs at least one store name, comma-separated")
    if args.promote and not (args.by and args.reason):
        return _refuse("--promote needs --by WHO and --reason WHY (it is audited)")
    try:
        report = rebuild(settings, stores, args.verify or args.promote, _progress)
        promoted = None
        if args.promote and report.differences:
            promoted = promote(settings, report.differences, args.by, args.reason,
                               int(time.time() * 1000))
    except OperatorError as exc:
        return _refuse(str(exc))
    rate = report.handled / report.seconds if report.seconds > 0 else 0.0
    lines = [f"rebuild {report.run_id}: replayed {report.inputs} input records "
             f"({report.handled} handled with internal ones) in {report.seconds:.1f} s "
             f"({rate:,.0f}/s) into fresh state, application id {report.app_id}",
             "rebuilt tables: " + ", ".join(f"{name} {n} keys"
                                            for name, n in report.tables.items()),
             "withheld (a live run sends these; the replay sent nothing anywhere): "
             + (", ".join(f"{t} {n}" for t, n in report.withheld.items()) or "none"),
             "live topics unchanged: " + ("yes" if report.live_topics_unchanged else
                                          f"NO, they moved (live workers running?): "
                                          f"{report.moved}"),
             f"rebuilt in {report.state_dir} (removed)"]
    if report.differences is not None:
        lines.append(f"verify: {len(report.differences)} difference(s) with the live tables")
        for d in report.differences:
            lines.append(f"  {d.store} {d.key}: differs at {', '.join(d.fields)}")
            lines.append(f"      rebuilt {json.dumps(d.rebuilt, sort_keys=True)}")
            lines.append(f"      live    {json.dumps(d.live, sort_keys=True)}")
    data = report.to_dict()
    if args.promote:
        data["promoted"] = promoted
        lines.append(f"promoted: {len(report.differences or [])} key(s) written to the live "
                     f"changelogs, audited as {promoted['audit_id']}" if promoted else
                     "promote: nothing to promote, the live tables agree")
        _emit(args, data, "\n".join(lines))
        return 0
    _emit(args, data, "\n".join(lines))
    return 1 if report.differences else 0


def _rebuild_balances(settings: Settings, args: argparse.Namespace) -> int:
    from streams.ops.rebuild_balances import rebuild_balances

    rebuilt, diffs = rebuild_balances(settings, args.verify, _progress)
    lines = [f"rebuilt {len(rebuilt)} account balance(s) from topup.credits; wrote nothing"]
    if diffs is None:
        lines.extend(f"  {account}: {balance}" for account, balance in sorted(rebuilt.items()))
    else:
        lines.append(f"verify: {len(diffs)} difference(s) with the live balances table")
        lines.extend(f"  {d.account_id}: rebuilt {d.rebuilt} live {d.live}" for d in diffs)
    data = {"balances": rebuilt,
            "differences": None if diffs is None else [d.to_dict() for d in diffs]}
    _emit(args, data, "\n".join(lines))
    return 1 if diffs else 0


def _migrate_state(settings: Settings, args: argparse.Namespace) -> int:
    from streams.codecs import default_catalog
    from streams.metrics import Metrics
    from streams.ops.rebuild import live_group_members
    from streams.runtime.changelog_topics import changelog_overrides
    from streams.runtime.family_migration import migrate
    from streams.runtime.kafka_admin import create_topics
    from streams.runtime.worker import changelog_specs
    from streams.topology import all_stages, store_specs
    from streams.worker_config import runtime_config

    if members := live_group_members(settings):
        return _refuse(f"{members} live worker(s) still in group {settings.app_id}: stop "
                       "them first (they would write the changelogs being copied)")
    config = runtime_config(settings)
    stages = all_stages(settings, default_catalog(), Metrics())
    create_topics(config.client, changelog_specs(config.app_id, stages,
                                                 changelog_overrides(config)),
                  config.partitions, config.replication_factor, config.topic_retention_days)
    report = migrate(config.client, config.app_id, store_specs(settings).values())
    lines = [f"copied {n} records of {name} into its family's changelog, then deleted it"
             for name, n in report.copied.items()]
    _emit(args, {"copied": report.copied, "seconds": round(report.seconds, 3)},
          "\n".join(lines) or "nothing to migrate: every store's state is in its "
          "family's changelog already")
    return 0


def _backtest(settings: Settings, args: argparse.Namespace) -> int:
    from streams.domain.risk.rules import RuleFileError
    from streams.ops.backtest import backtest
    from streams.recon_report_cli import parse_since
    from streams.rule_files import load_rules
    from streams.topology import DEFAULT_RISK_RULES

    try:
        new = load_rules(args.rules)
        current = load_rules(settings.risk_rules or DEFAULT_RISK_RULES)
    except (RuleFileError, OSError) as exc:
        return _refuse(f"rule file: {exc}")
    try:
        since, until = parse_since(args.since), parse_since(args.until)
    except ValueError:
        return _refuse("--since/--until must be ISO dates or epoch ms")
    report = backtest(settings, current, new, since, until, _progress)
    lines = [f"backtest of {new.rules_version} against {current.rules_version} on "
             f"{report.orders} orders (replayed in process; new decisions written only to "
             f"{report.shadow_topic}: {report.shadow_records} records)",
             f"replay fidelity, current rules against recorded decisions: "
             f"{report.fidelity['same']} same, {report.fidelity['different']} different",
             "decisions, current (rows) -> new (columns):"]
    names = ["ALLOW", "STEP_UP", "REVIEW", "BLOCK"]
    lines.append("  " + " " * 10 + "".join(f"{n:>10}" for n in names))
    for old in names:
        row = report.matrix.get(old, {})
        lines.append(f"  {old:10}" + "".join(f"{row.get(n, 0):>10}" for n in names))
    amounts = ", ".join(f"{a} {c}" for c, a in sorted(report.amount_changed_minor.items()))
    lines.append(f"{len(report.changed)} orders change decision ({amounts or 'no amount'})")
    lines.extend(f"  {c['order_id']}: {c['current']} -> {c['new']}, {c['amount_minor']} "
                 f"{c['currency']}, outcome since: {c['outcome']}" for c in report.changed)
    lines.append("rules firing more or less often (current -> new):")
    lines.extend(f"  {rule}: {h['current']} -> {h['new']}" for rule, h in report.rule_hits.items())
    lines.append("changed orders by known outcome -> new decision:")
    lines.extend(f"  {outcome}: {dict(sorted(counts.items()))}"
                 for outcome, counts in sorted(report.outcomes.items()))
    _emit(args, report.to_dict(), "\n".join(lines))
    return 0


def add_operator_commands(commands: argparse._SubParsersAction) -> None:
    """Register the operators' subcommands on the `topup-guard` parser."""
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON, not a report")
    action = argparse.ArgumentParser(add_help=False)
    action.add_argument("--by", required=True, help="who is acting (audited)")
    action.add_argument("--reason", required=True, help="why (audited)")

    for name, run, help_text in (
        ("freeze", _freeze, "stop credits or refunds in a scope (they wait, ON_HOLD)"),
        ("unfreeze", _unfreeze, "lift a freeze: what it held is released, once"),
    ):
        sub = commands.add_parser(name, help=help_text, parents=[json_flag, action])
        sub.add_argument("--scope", required=True,
                         help="global, provider:<p>, merchant:<m> or account:<a>")
        sub.add_argument("--what", required=True, choices=["credits", "refunds"])
        sub.set_defaults(run=run)

    freezes = commands.add_parser("freezes", help="the freezes in force: who, when, why",
                                  parents=[json_flag])
    freezes.set_defaults(run=_freezes)

    trace = commands.add_parser(
        "trace", parents=[json_flag],
        help="an order's chain of evidence, or (--account) an account's ledger and balance")
    trace.add_argument("order_id", nargs="?", metavar="ORDER_ID")
    trace.add_argument("--account", metavar="ID")
    trace.set_defaults(run=_trace)

    reviews = commands.add_parser("reviews", parents=[json_flag],
                                  help="open review cases, with their evidence")
    reviews.set_defaults(run=_reviews)
    review = commands.add_parser("review", parents=[json_flag],
                                 help="approve or reject a review case (REVIEW_* on topup.orders)")
    review.add_argument("decision", choices=["approve", "reject"])
    review.add_argument("case_id", metavar="CASE")
    review.add_argument("--by", required=True, help="who decides (audited)")
    review.add_argument("--note", "--reason", dest="note", required=True,
                        help="why (audited)")
    review.set_defaults(run=_review)

    reverse = commands.add_parser(
        "reverse", parents=[json_flag, action],
        help="reverse a wrong credit: the order stage books one REVERSAL of it, however "
             "often this is asked")
    reverse.add_argument("entry_id", metavar="ENTRY_ID", help="the CREDIT on topup.credits")
    reverse.set_defaults(run=_reverse)

    rebuild = commands.add_parser(
        "rebuild", parents=[json_flag],
        help="rebuild tables by replaying the input topics into fresh state (writes "
             "nothing); `rebuild balances` derives balances from topup.credits alone")
    rebuild.add_argument("what", nargs="?", choices=["balances"],
                         help="balances: from the ledger alone, no replay")
    rebuild.add_argument("--stores", metavar="NAMES",
                         help="comma-separated stores to rebuild and verify (default: "
                              "order-state,balances,recon-state)")
    rebuild.add_argument("--verify", action="store_true",
                         help="compare with the live tables, print every difference, exit 1 "
                              "if any")
    rebuild.add_argument("--promote", action="store_true",
                         help="write the rebuilt values of the differing keys to the live "
                              "changelogs (workers stopped; needs --by and --reason)")
    rebuild.add_argument("--by", help="who promotes (audited)")
    rebuild.add_argument("--reason", help="why (audited)")
    rebuild.set_defaults(run=_rebuild)

    migrate = commands.add_parser(
        "migrate-state", parents=[json_flag],
        help="once, workers stopped, after an upgrade that put stores in a family: copy "
             "their own changelogs into the family's and delete them")
    migrate.set_defaults(run=_migrate_state)

    backtest = commands.add_parser(
        "backtest", parents=[json_flag],
        help="replay recorded orders and outcomes through the risk rules in NEW.yaml")
    backtest.add_argument("--rules", required=True, metavar="NEW.yaml")
    backtest.add_argument("--since", help="orders created at or after (ISO or epoch ms)")
    backtest.add_argument("--until", help="replay only events before (ISO or epoch ms)")
    backtest.set_defaults(run=_backtest)
