"""The link model: what one direction of an emulated link does to the frames that cross it.

Pure data with validation (one-line ConfigError naming the field and value); the elements that
implement it (ICPN's `icpn_linkd`, pyctl.net.linkd) render it into their own terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pyctl.errors import ConfigError

Direction = Literal["a2b", "b2a", "both"]
JitterDist = Literal["uniform", "normal", "paretonormal"]
JITTER_DISTS: tuple[str, ...] = ("uniform", "normal", "paretonormal")
MAX_DELAY_MS = 3_600_000.0  # the element accepts up to an hour


def check_number(where: str, name: str, value: object, lo: float, hi: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not lo <= float(value) <= hi:  # type: ignore[arg-type]
        raise ConfigError(where, f"{name}: {value!r} is not a number in [{lo:g}, {hi:g}]")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GilbertElliott:
    """netem's `loss gemodel p r 1-h 1-k`, all in percent: per frame the state moves good->bad
    with p, bad->good with r; a frame is lost with loss_bad in the bad state (1-h) and with
    loss_good in the good state (1-k). The draw uses the state the frame found."""

    p_pct: float
    r_pct: float
    loss_bad_pct: float = 100.0
    loss_good_pct: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_pct", "r_pct", "loss_bad_pct", "loss_good_pct"):
            check_number("gilbert_elliott", name, getattr(self, name), 0, 100)

    def mean_loss_pct(self) -> float:
        """The stationary loss rate: pi_bad = p / (p + r)."""
        if self.p_pct + self.r_pct == 0:
            return self.loss_good_pct
        bad = self.p_pct / (self.p_pct + self.r_pct)
        return bad * self.loss_bad_pct + (1 - bad) * self.loss_good_pct


@dataclass(frozen=True)
class LinkModel:
    """One direction of a link. delay_ms: one-way propagation; jitter_ms: the spread of the
    jitter distribution (uniform: +-jitter, normal/paretonormal: sigma), never reordering
    unless `reorder`; loss_pct: random loss, or `gilbert_elliott` for bursts (not both);
    rate_mbit: serialisation rate (None: none); queue_packets / queue_bytes: tail-drop limits on
    frames waiting for serialisation (with a rate) or in flight (without); None: no limit."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: JitterDist = "uniform"
    reorder: bool = False
    loss_pct: float = 0.0
    gilbert_elliott: GilbertElliott | None = None
    rate_mbit: float | None = None
    queue_packets: int | None = 1000
    queue_bytes: int | None = None

    def __post_init__(self) -> None:
        w = "link model"
        check_number(w, "delay_ms", self.delay_ms, 0, MAX_DELAY_MS)
        check_number(w, "jitter_ms", self.jitter_ms, 0, MAX_DELAY_MS)
        if self.jitter_dist not in JITTER_DISTS:
            raise ConfigError(w, f"jitter_dist: {self.jitter_dist!r} is not one of {JITTER_DISTS}")
        if not isinstance(self.reorder, bool):
            raise ConfigError(w, f"reorder: {self.reorder!r} is not true or false")
        check_number(w, "loss_pct", self.loss_pct, 0, 100)
        if self.gilbert_elliott is not None:
            if not isinstance(self.gilbert_elliott, GilbertElliott):
                raise ConfigError(w, f"gilbert_elliott: {self.gilbert_elliott!r} is not a model")
            if self.loss_pct:
                raise ConfigError(w, f"loss_pct: {self.loss_pct!r} set with gilbert_elliott")
        if self.rate_mbit is not None:
            check_number(w, "rate_mbit", self.rate_mbit, 0.001, 10_000_000)
        for name in ("queue_packets", "queue_bytes"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**9
            ):
                raise ConfigError(w, f"{name}: {value!r} is not an integer in [1, 1e9] or None")

    def tokens(self) -> list[str]:
        """The element's `set` arguments for this model (every key, so nothing stale stays)."""
        ge = self.gilbert_elliott
        ge_arg = (
            f"{ge.p_pct!r},{ge.r_pct!r},{ge.loss_bad_pct!r},{ge.loss_good_pct!r}" if ge else "off"
        )
        return [
            f"delay_us={self.delay_ms * 1000:.3f}",
            f"jitter_us={self.jitter_ms * 1000:.3f}",
            f"dist={self.jitter_dist}",
            f"reorder={int(self.reorder)}",
            f"loss_pct={self.loss_pct!r}",
            f"ge={ge_arg}",
            f"rate_bps={(self.rate_mbit or 0) * 1e6!r}",
            f"queue_pkts={self.queue_packets or 0}",
            f"queue_bytes={self.queue_bytes or 0}",
        ]
