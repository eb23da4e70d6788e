"""Reading a risk rule file: the I/O the domain's rule parser leaves to its callers."""

from __future__ import annotations

from pathlib import Path

from streams.domain.risk.rules import RuleFileError, RuleSet, parse_rules


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rule file; RuleFileError on any problem (also an unreadable one)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RuleFileError(str(path), 0, f"cannot read the rule file: {exc.strerror}") from None
    return parse_rules(data, source=str(path))
