"""`topup-guard recon report`: the breaks on topup.recon-breaks, summed up."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from streams import topics
from streams.config import Settings
from streams.confluent import reading_catalog
from streams.domain.recon.report import ReconReport, build_report, render_report
from streams.kafka_clients import read_committed

MATCHED = "MATCHED"
UNKNOWN_PROVIDER = "unknown"


def parse_since(text: str | None) -> int | None:
    """An ISO date or date-time (UTC unless it says otherwise), or epoch milliseconds."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def report(settings: Settings, since_ms: int | None, timeout_s: float = 60.0) -> str:
    return render_report(recon_report(settings, since_ms, timeout_s))


def recon_report(settings: Settings, since_ms: int | None, timeout_s: float = 60.0
                 ) -> ReconReport:
    """The report's figures (the CLI prints them; the console renders them)."""
    records = read_committed(settings, [topics.RECON_BREAKS, topics.AUDIT],
                             until=time.monotonic() + timeout_s, idle_s=2.0)
    catalog = reading_catalog(settings)  # outputs may be Confluent-framed
    breaks, matched = [], dict[str, str]()  # matched order -> its provider
    for record in records:
        if record.topic == topics.RECON_BREAKS:
            breaks.append(catalog.decode("ReconBreak", record.value))
            continue
        audit = catalog.decode("AuditRecord", record.value)
        at_or_after = since_ms is None or audit["at"] >= since_ms
        if audit["action"] == MATCHED and str(audit["rule"]).startswith("recon.") and at_or_after:
            # Audits written before the line's provider was in their evidence say none.
            provider = (audit.get("inputs") or {}).get("line.provider") or UNKNOWN_PROVIDER
            matched.setdefault(audit["subject"], provider)
    return build_report(breaks, len(matched), since_ms, Counter(matched.values()))
