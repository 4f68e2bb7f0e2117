"""Each link's configured model beside what was measured on it, for a run's report.

Measured loss comes from the link element's own counters (frames it received in each
direction against those it dropped for loss, queue or a link taken down); measured delay comes
from the IFIT per-hop delays the collector computed between the link's two ends (timestamps of
the two IFIT nodes, one clock on one machine): the minimum is the link's propagation as the
packets that met an empty queue saw it, the mean adds the queueing of a loaded link. A link that
no IFIT flow crosses, or whose end is a host, has no measured delay ("-").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyctl.model.topology import Link
from pyctl.net.linkd import LinkStats


def _loss_pct(rx: int, dropped: int) -> float | None:
    return 100.0 * dropped / rx if rx else None


def _configured_loss_pct(link: Link, direction: str) -> float:
    model = link.model(direction)
    ge = model.gilbert_elliott
    return ge.mean_loss_pct() if ge is not None else model.loss_pct


def hop_delays_ms(
    ifit: Sequence[Mapping[str, Any]],
) -> dict[frozenset[str], tuple[float, float, int]]:
    """Per-hop delay of every IFIT flow by the unordered pair of node names: (minimum over the
    flows' minima, mean weighted by the flows' sample counts, samples), in ms."""
    acc: dict[frozenset[str], list[tuple[float, float, int]]] = {}
    for flow in ifit:
        for hop in flow.get("hops", []):
            d = hop.get("delay_us")
            if not isinstance(d, dict) or not isinstance(d.get("avg"), int | float):
                continue
            n = int(d.get("count", 1))
            lo = d.get("min")
            lo = lo if isinstance(lo, int | float) else d["avg"]
            key = frozenset((hop["from"], hop["to"]))
            acc.setdefault(key, []).append((lo / 1000, d["avg"] / 1000, n))
    out = {}
    for key, seen in acc.items():
        total = sum(n for _, _, n in seen)
        mean = sum(avg * n for _, avg, n in seen) / total if total else seen[0][1]
        out[key] = (min(lo for lo, _, _ in seen), mean, total)
    return out


def link_rows(
    links: Sequence[Link],
    stats: Mapping[str, LinkStats],
    ifit: Sequence[Mapping[str, Any]],
    element: str,
) -> list[dict[str, Any]]:
    """One row per link: configured delay / loss / rate beside measured delay and loss."""
    hops = hop_delays_ms(ifit)
    rows = []
    for lk in links:
        name = f"{lk.a}-{lk.b}"
        st = stats.get(name)
        measured: dict[str, Any] = {}
        if st is not None:
            for direction, c in (("a2b", st.a2b), ("b2a", st.b2a)):
                dropped = c.dropped_loss + c.dropped_queue + c.dropped_down
                measured[direction] = {
                    "frames": c.rx,
                    "dropped_loss": c.dropped_loss,
                    "dropped_queue": c.dropped_queue,
                    "loss_pct": _loss_pct(c.rx, dropped),
                }
        hop = hops.get(frozenset((lk.a, lk.b)))
        rows.append(
            {
                "link": name,
                "element": element,
                "configured": {
                    "delay_ms": lk.model("a2b").delay_ms,
                    "delay_ms_b2a": lk.model("b2a").delay_ms,
                    "jitter_ms": lk.jitter_ms,
                    "loss_pct": _configured_loss_pct(lk, "a2b"),
                    "loss_pct_b2a": _configured_loss_pct(lk, "b2a"),
                    "bw_mbit": lk.bw_mbit,
                },
                "measured": {
                    "delay_ms": hop[0] if hop else None,  # propagation (empty queue)
                    "delay_avg_ms": hop[1] if hop else None,  # with queueing
                    "delay_samples": hop[2] if hop else 0,
                    **measured,
                },
            }
        )
    return rows
