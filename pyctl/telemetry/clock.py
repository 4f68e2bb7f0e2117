"""Per-node clock offsets: what a per-hop or one-way delay computed from IOAM timestamps means.

A delay from two nodes' timestamps is ``ts_b - ts_a``; it is a real delay only if the two clocks
agree. eBPF nodes of one machine share the kernel clock (synchronised); BMv2 stamps µs since
each switch started (not synchronised). The collector therefore corrects every timestamp with a
per-node offset (µs the node's clock is *ahead* of the reference clock), ``ts - offset(node)``,
and labels every delay with its **basis**:

* ``raw`` — no correction known for either end; meaningful only if the clocks are synchronised.
* ``synchronised`` — the same, but the operator declared the clocks synchronised.
* ``configured`` — at least one end was corrected with an offset given in the configuration.
* ``estimated`` — at least one end was corrected with an estimated offset (below).

**Estimator** (``ClockConfig.estimate``): for every directed hop a→b the collector keeps the
minimum raw delay of each colour period, over the last `window_periods` periods. Assuming that
the fastest packet of a window crossed the hop in ``floor_us`` (the hop's fixed delay: 0 by
default, or the link's propagation delay when known), the clocks differ by
``offset(b) - offset(a) = min_raw(a, b) - floor(a, b)``. Offsets are propagated from anchors: the
nodes with a configured offset, else one reference node per connected group (`reference`, or
the smallest node id that starts a path, else the smallest id), whose offset is 0. A corrected
per-hop delay on the propagation tree is then ``floor + (raw - min_raw)``: the hop's fixed
delay plus the queueing/variation above the window's fastest packet — not an absolute
propagation delay. Constant offsets cancel out of jitter, so jitter needs no correction; loss
does not use clocks at all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyctl.errors import ConfigError

SRC_CONFIGURED = "configured"
SRC_ESTIMATED = "estimated"
SRC_REFERENCE = "reference"


@dataclass(frozen=True)
class ClockConfig:
    offsets: Mapping[int, int] = field(default_factory=dict)
    """node id -> µs its clock is ahead of the reference clock (fixed anchors)."""
    estimate: bool = False
    window_periods: int = 10
    floor_us: int = 0
    link_floor_us: Mapping[tuple[int, int], int] = field(default_factory=dict)
    reference: int | None = None
    synchronised: bool = False

    def __post_init__(self) -> None:
        if self.window_periods < 1:
            raise ConfigError("clock.window_periods", f"{self.window_periods} is not >= 1")
        if self.floor_us < 0:
            raise ConfigError("clock.floor_us", f"{self.floor_us} is negative")
        for link, floor in self.link_floor_us.items():
            if floor < 0:
                raise ConfigError(f"clock.link_floor_us[{link[0]}-{link[1]}]", f"{floor} < 0")


class ClockModel:
    """Offsets (configured and estimated) and the basis label of each delay."""

    def __init__(self, config: ClockConfig, max_links: int) -> None:
        self.config = config
        self.max_links = max_links
        self.offsets: dict[int, int] = dict(config.offsets)
        self.sources: dict[int, str] = {n: SRC_CONFIGURED for n in config.offsets}
        self._period_min: dict[tuple[int, int], int] = {}
        self._window: dict[tuple[int, int], deque[int]] = {}
        self._heads: set[int] = set()
        self.raw_label = "synchronised" if config.synchronised else "raw"
        """Basis of a delay between two uncorrected clocks."""
        self._basis_cache: dict[tuple[int, int], str] = {}

    def observe(self, a: int, b: int, raw_delay: int) -> None:
        """Record one raw delay of hop a→b (only used when estimating)."""
        link = (a, b)
        cur = self._period_min.get(link)
        if cur is None:
            if len(self._period_min) < self.max_links:
                self._period_min[link] = raw_delay
        elif raw_delay < cur:
            self._period_min[link] = raw_delay

    def observe_head(self, node: int) -> None:
        if len(self._heads) < self.max_links:
            self._heads.add(node)

    def basis(self, a: int, b: int) -> str:
        """Label of a delay computed from the timestamps of nodes a and b."""
        key = (a, b)
        cached = self._basis_cache.get(key)
        if cached is not None:
            return cached
        srcs = (self.sources.get(a), self.sources.get(b))
        if SRC_ESTIMATED in srcs or SRC_REFERENCE in srcs:
            label = SRC_ESTIMATED
        elif SRC_CONFIGURED in srcs:
            label = SRC_CONFIGURED
        else:
            label = self.raw_label
        if len(self._basis_cache) < self.max_links:
            self._basis_cache[key] = label
        return label

    def roll(self) -> None:
        """Close a colour period: move its minima into the window and re-estimate."""
        if not self.config.estimate:
            return
        for link, value in self._period_min.items():
            window = self._window.get(link)
            if window is None:
                window = self._window[link] = deque(maxlen=self.config.window_periods)
            window.append(value)
        self._period_min = {}  # a silent link keeps its last window (and estimate)
        self._estimate()

    def window_minima(self) -> dict[tuple[int, int], int]:
        return {link: min(w) for link, w in self._window.items() if w}

    def _estimate(self) -> None:
        minima = self.window_minima()
        graph: dict[int, list[tuple[int, int]]] = {}
        for (a, b), m in minima.items():
            if a == b:
                continue
            diff = m - self.config.link_floor_us.get((a, b), self.config.floor_us)
            graph.setdefault(a, []).append((b, diff))
            graph.setdefault(b, []).append((a, -diff))
        offsets: dict[int, int] = {}
        sources: dict[int, str] = {}
        for node, off in self.config.offsets.items():
            offsets[node] = off
            sources[node] = SRC_CONFIGURED
        self._propagate(graph, list(offsets), offsets, sources)
        remaining = sorted(n for n in graph if n not in offsets)
        while remaining:
            component = self._component(graph, remaining[0])
            heads = sorted(n for n in component if n in self._heads)
            if self.config.reference is not None and self.config.reference in component:
                ref = self.config.reference
            else:
                ref = heads[0] if heads else min(component)
            offsets[ref] = 0
            sources[ref] = SRC_REFERENCE
            self._propagate(graph, [ref], offsets, sources)
            remaining = [n for n in remaining if n not in offsets]
        self.offsets = offsets
        self.sources = sources
        self._basis_cache = {}

    @staticmethod
    def _component(graph: dict[int, list[tuple[int, int]]], start: int) -> set[int]:
        seen = {start}
        todo = [start]
        while todo:
            for nxt, _ in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    @staticmethod
    def _propagate(
        graph: dict[int, list[tuple[int, int]]],
        starts: list[int],
        offsets: dict[int, int],
        sources: dict[int, str],
    ) -> None:
        queue = deque(starts)
        while queue:
            node = queue.popleft()
            for nxt, diff in graph.get(node, ()):
                if nxt not in offsets:
                    offsets[nxt] = offsets[node] + diff
                    sources[nxt] = SRC_ESTIMATED
                    queue.append(nxt)
