"""What an experiment reports: its headline figures (the paper's beside the emulated), what it
scales and why, and the helpers that format and compute them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyctl.controller.plan import Plan


@dataclass(frozen=True)
class Figure:
    """One headline figure: as the paper states it, and as this run measured it."""

    what: str
    paper: str
    emulated: str
    value: float | None = None  # the emulated figure as a number (ratios as 0..1)
    note: str = ""


@dataclass(frozen=True)
class Scaled:
    """One thing the experiment scales down (or leaves out), and why."""

    what: str
    paper: str
    here: str
    why: str


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def ifit_delays_us(plan: Plan, ifit: Mapping[str, Any], flows: Sequence[str]) -> list[float]:
    """Mean one-way delay (µs) the collector measured for each IFIT flow of these names."""
    ids = {plan.flowmon_ids[n] for n in flows if n in plan.flowmon_ids}
    out = []
    for fl in ifit.get("flows", []):
        avg = (fl.get("delay_us") or {}).get("avg")
        if fl.get("flowmon_id") in ids and isinstance(avg, int | float):
            out.append(float(avg))
    return out
