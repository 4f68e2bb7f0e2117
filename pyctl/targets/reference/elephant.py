"""Elephant-flow detection (SPEC 4, docs/pipeline.md 3): a count-min sketch per measurement
window, a flow is an elephant once its estimate reaches the threshold, and stays one until
`idle_windows` whole windows pass without a packet of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyctl.model.hashing import FlowKey, sketch_index
from pyctl.model.node import ElephantConfig


@dataclass
class ElephantDetector:
    cfg: ElephantConfig
    window: int | None = None
    sketch: list[list[int]] = field(default_factory=list)
    last_seen: dict[FlowKey, int] = field(default_factory=dict)  # elephant -> last window

    def _new_window(self, w: int) -> None:
        """The sketch is reset at every new window (including time going backwards)."""
        self.window = w
        self.sketch = [[0] * self.cfg.width for _ in range(self.cfg.rows)]

    def _age(self, w: int) -> None:
        """Forget elephants with `idle_windows` or more windows without a packet before `w`."""
        self.last_seen = {k: s for k, s in self.last_seen.items() if w - s <= self.cfg.idle_windows}

    def observe(self, key: FlowKey, nbytes: int, time_us: int) -> bool:
        """Count one packet of `nbytes` (its IP length) and say whether its flow is an elephant."""
        w = time_us // self.cfg.window_us
        if w != self.window:
            self._new_window(w)
        self._age(w)
        estimate = None
        for row in range(self.cfg.rows):
            col = sketch_index(row, key, self.cfg.width)
            self.sketch[row][col] += nbytes
            value = self.sketch[row][col]
            estimate = value if estimate is None else min(estimate, value)
        if (estimate is not None and estimate >= self.cfg.threshold_bytes) or key in self.last_seen:
            self.last_seen[key] = w
        return key in self.last_seen

    def elephants(self) -> frozenset[FlowKey]:
        """The elephants as of the last packet's window."""
        return frozenset(self.last_seen)
