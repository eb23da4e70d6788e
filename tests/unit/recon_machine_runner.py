"""One order's inputs through the reconciliation machine: a runner that stores its state
as JSON between steps the way the table does, and filters over its outputs. The recon
builders it is used with are re-exported under the short names its tests use. Shared by
the reconciliation and reversal tests."""

from __future__ import annotations

import json

from streams.domain.common.outputs import AlertOut, AuditOut
from streams.domain.common.time import Tick
from streams.domain.recon.inputs import (
    ReconConfig,
    ReconContext,
    ReconInput,
)
from streams.domain.recon.machine import ReconOutput, step
from streams.domain.recon.outputs import (
    ControlCommandOut,
    ReconBreakOut,
    ReconOutcome,
    SettlementProof,
)
from streams.domain.recon.state import ReconState, Wake
from tests.builders import (
    RECON_GRACE as GRACE,
)
from tests.builders import (
    RECON_MINUTE as MINUTE,
)
from tests.builders import (
    RECON_T0 as T0,
)
from tests.builders import (
    recon_credit as credit,
)
from tests.builders import (
    recon_line as line,
)
from tests.builders import (
    recon_snapshot as snapshot,
)
from tests.builders import (
    recon_watermark as watermark,
)

__all__ = [
    "GRACE",
    "MINUTE",
    "T0",
    "Recon",
    "alerts",
    "audits",
    "breaks",
    "commands",
    "credit",
    "kinds",
    "line",
    "outcomes",
    "proofs",
    "run_of",
    "snapshot",
    "watermark",
]


class Recon:
    """Feeds one order's inputs through `step`, storing the state as JSON in between the
    way the table does, and keeps every output."""

    def __init__(self, config: ReconConfig | None = None) -> None:
        self.config = config or ReconConfig()
        self.state: ReconState | None = None
        self.now = T0
        self.log: list[ReconOutput] = []

    def __call__(self, event: ReconInput | Tick, at: int | None = None) -> list[ReconOutput]:
        self.now = self.now + 1000 if at is None else at
        ctx = ReconContext(now_ms=self.now, correlation_id=None, config=self.config)
        stored = None if self.state is None else json.dumps(self.state.to_dict())
        state = None if stored is None else ReconState.from_dict(json.loads(stored))
        self.state, outputs = step(state, event, ctx)
        self.log.extend(outputs)
        return outputs

    def tick(self, at: int) -> list[ReconOutput]:
        return self(Tick(at), at=at)

    def wake(self) -> Wake:
        assert self.state is not None
        return self.state.wake()


def run_of(*events: ReconInput, at: int = T0) -> Recon:
    recon = Recon()
    for event in events:
        recon(event, at=at)
    return recon


def breaks(outputs: list[ReconOutput]) -> list[ReconBreakOut]:
    return [o for o in outputs if isinstance(o, ReconBreakOut)]


def audits(outputs: list[ReconOutput]) -> list[AuditOut]:
    return [o for o in outputs if isinstance(o, AuditOut)]


def alerts(outputs: list[ReconOutput]) -> list[AlertOut]:
    return [o for o in outputs if isinstance(o, AlertOut)]


def proofs(outputs: list[ReconOutput]) -> list[SettlementProof]:
    return [o for o in outputs if isinstance(o, SettlementProof)]


def commands(outputs: list[ReconOutput]) -> list[ControlCommandOut]:
    return [o for o in outputs if isinstance(o, ControlCommandOut)]


def outcomes(outputs: list[ReconOutput]) -> list[ReconOutcome]:
    return [o for o in outputs if isinstance(o, ReconOutcome)]


def kinds(outputs: list[ReconOutput]) -> list[tuple[str, str]]:
    return [(b.category.value, b.action.value) for b in breaks(outputs)]
