"""Running delay statistics: per colour period (window) and whole-run figures, RFC 3550 jitter."""

from __future__ import annotations

from typing import Any

JITTER_GAIN = 1 / 16
"""RFC 3550 §6.4.1: J += (|D(i-1, i)| - J) / 16, with D the change of one-way delay."""


class RunningStats:
    """Count, min, mean, max and last of a delay in µs, per window and over the whole run.

    `add` only touches the current window (it runs for every hop of every report); `roll` closes
    the window (one colour period): folds it into the whole-run figures and keeps it readable as
    ``p_*`` (the last closed window; ``p_count`` 0 = nothing arrived in it). `basis` names the
    clock correction the values were computed with; a change of basis restarts the figures, so
    values of different bases are never mixed.
    """

    __slots__ = (
        "basis",
        "count",
        "total",
        "min",
        "max",
        "last",
        "jitter",
        "w_count",
        "w_total",
        "w_min",
        "w_max",
        "p_count",
        "p_avg",
        "p_min",
        "p_max",
        "p_jitter",
    )

    def __init__(self, basis: str = "raw") -> None:
        self.reset(basis)

    def reset(self, basis: str) -> None:
        self.basis = basis
        self.count = 0  # closed windows only; n = count + w_count
        self.total = 0
        self.min = 0
        self.max = 0
        self.last = 0
        self.jitter = 0.0
        self.w_count = 0
        self.w_total = 0
        self.w_min = 0
        self.w_max = 0
        self.p_count = 0
        self.p_avg = 0.0
        self.p_min = 0
        self.p_max = 0
        self.p_jitter = 0.0

    def add(self, value: int, basis: str) -> None:
        if basis != self.basis:
            self.reset(basis)
        if self.w_count:
            if value < self.w_min:
                self.w_min = value
            elif value > self.w_max:
                self.w_max = value
            change = value - self.last
            self.jitter += ((change if change >= 0 else -change) - self.jitter) * JITTER_GAIN
        else:
            self.w_min = self.w_max = value
            if self.count:
                change = value - self.last
                self.jitter += ((change if change >= 0 else -change) - self.jitter) * JITTER_GAIN
        self.last = value
        self.w_count += 1
        self.w_total += value

    def absorb(self, other: RunningStats) -> None:
        """Fold `other`'s current window into this window (a link = the union of its flows).

        The jitter of the merged window is the largest of the absorbed ones: the smoothed
        jitter of interleaved flows would mix their different delays.
        """
        if not other.w_count:
            return
        if other.basis != self.basis:
            self.reset(other.basis)
        if self.w_count:
            self.w_min = min(self.w_min, other.w_min)
            self.w_max = max(self.w_max, other.w_max)
            self.jitter = max(self.jitter, other.jitter)
        else:
            self.w_min, self.w_max, self.jitter = other.w_min, other.w_max, other.jitter
        self.w_count += other.w_count
        self.w_total += other.w_total
        self.last = other.last

    def roll(self) -> None:
        """Close the window."""
        self.p_count = self.w_count
        if self.w_count:
            self.p_avg = self.w_total / self.w_count
            self.p_min = self.w_min
            self.p_max = self.w_max
            if self.count:
                self.min = min(self.min, self.w_min)
                self.max = max(self.max, self.w_max)
            else:
                self.min, self.max = self.w_min, self.w_max
            self.count += self.w_count
            self.total += self.w_total
        self.p_jitter = self.jitter
        self.w_count = 0
        self.w_total = 0

    @property
    def n(self) -> int:
        """Values over the whole run (closed windows and the current one)."""
        return self.count + self.w_count

    def as_dict(self) -> dict[str, Any]:
        """Whole-run figures, the current ``window`` and the ``last_period`` closed (if any)."""
        n = self.count + self.w_count
        out: dict[str, Any] = {"basis": self.basis, "count": n}
        if n:
            lo = [v for c, v in ((self.count, self.min), (self.w_count, self.w_min)) if c]
            hi = [v for c, v in ((self.count, self.max), (self.w_count, self.w_max)) if c]
            out.update(
                last=self.last,
                min=min(lo),
                avg=round((self.total + self.w_total) / n, 3),
                max=max(hi),
                jitter=round(self.jitter, 3),
            )
        window: dict[str, Any] = {"count": self.w_count}
        if self.w_count:
            window.update(min=self.w_min, avg=round(self.w_total / self.w_count, 3), max=self.w_max)
        out["window"] = window
        if self.p_count:
            out["last_period"] = {
                "count": self.p_count,
                "min": self.p_min,
                "avg": round(self.p_avg, 3),
                "max": self.p_max,
                "jitter": round(self.p_jitter, 3),
            }
        return out
