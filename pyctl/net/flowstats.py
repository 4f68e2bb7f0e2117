"""Each flow's figures in a phase, from the statistics files of its sender and receivers.

The traffic processes (pyctl.net.traffic) rewrite their `--stats` files every half second while
they run and once at the end, so the same reading gives a phase's result once it is over and
the figures so far while it runs (the live view). A file not written yet counts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl.controller.plan import Plan
from pyctl.model.topology import Topology


@dataclass
class FlowResult:
    name: str
    sent_mbit: float = 0.0
    received_mbit: float = 0.0
    ce: int = 0
    cnps: int = 0
    pfc_pauses: int = 0
    retransmits: int = 0  # RC flows: packets sent again (go-back-N)
    timeouts: int = 0
    fetch_s: list[float] = field(default_factory=list)  # RC messages: transfer + round trip each


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet
        return None


def flow_results(
    topo: Topology, plan: Plan, tx: Mapping[str, Path], rx: Iterable[Path]
) -> list[FlowResult]:
    """One result per topology flow: what its sender's file (`tx`, by flow name) says it sent,
    what the receivers' files say arrived of its QP from its source (flow i without a QP of its
    own uses 0x10 + i, as `icpn run` starts it)."""
    received: dict[str, Any] = {}
    for path in rx:
        got = _read(path)
        if isinstance(got, dict):
            received.update(got)
    out = []
    for i, f in enumerate(topo.flows):
        res = FlowResult(f.name)
        sent = _read(tx[f.name]) if f.name in tx else None
        if isinstance(sent, dict):
            res.sent_mbit = sent["bytes"] * 8 / max(sent["seconds"], 1e-9) / 1e6
            res.cnps = sent["cnps"]
            res.pfc_pauses = sent.get("pfc_pauses", 0)
            res.retransmits = sent.get("retransmits", 0)
            res.timeouts = sent.get("timeouts", 0)
        got = received.get(f"{plan.hosts[f.src].address}/{f.qp or 0x10 + i:#x}")
        if got is not None:
            span = max(got["last"] - got["first"], 1e-9)
            res.received_mbit = got["bytes"] * 8 / span / 1e6
            res.ce = got["ce"]
        out.append(res)
    return out
