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
