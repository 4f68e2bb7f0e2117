"""Each link's configured model beside what was measured on it, for a run's report.

Measured loss comes from the link element's own counters (frames it received in each
direction against those it dropped for loss, queue or a link taken down); measured delay comes
from the IFIT per-hop delays the collector computed between the link's two ends (timestamps of
the two IFIT nodes, one clock on one machine): the minimum is what the packets that met an
empty queue took, the mean adds the queueing of a loaded link. A packet's per-hop delay also
holds its own frame's serialisation at the link's rate (the far node stamps it once the whole
frame is in: 0.7 ms for a 4 KB RoCE frame at an emulated 50 Mbit/s, 0.3 µs on the pilot's
100 Gbit/s links), so the propagation is each IFIT flow's minimum less its frame's time on the
link (`frame_bytes`, from pyctl.net.framesize), the least over the flows that cross it. A link
that no IFIT flow crosses, or whose end is a host, has no measured delay ("-").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pyctl.model.topology import Link
from pyctl.net.linkd import LinkStats


def _loss_pct(rx: int, dropped: int) -> float | None:
    return 100.0 * dropped / rx if rx else None


def _configured_loss_pct(link: Link, direction: str) -> float:
    model = link.model(direction)
    ge = model.gilbert_elliott
    return ge.mean_loss_pct() if ge is not None else model.loss_pct


def _hops(
    ifit: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[frozenset[str], Mapping[str, Any], str]]:
    """Every IFIT flow's per-hop delays that have a mean: (unordered pair of node names, the
    collector's delay_us figures, the flow's name)."""
    for flow in ifit:
        for hop in flow.get("hops", []):
            d = hop.get("delay_us")
            if isinstance(d, dict) and isinstance(d.get("avg"), int | float):
                yield frozenset((hop["from"], hop["to"])), d, str(flow.get("flow", ""))


def _hop_delays_ms(
    hops: Sequence[tuple[frozenset[str], Mapping[str, Any], str]],
) -> dict[frozenset[str], tuple[float, float, int]]:
    """Per hop: (minimum over the flows' minima, mean weighted by the flows' sample counts,
    samples), in ms."""
    acc: dict[frozenset[str], list[tuple[float, float, int]]] = {}
    for key, d, _ in hops:
        lo = d.get("min")
        lo = lo if isinstance(lo, int | float) else d["avg"]
        acc.setdefault(key, []).append((lo / 1000, d["avg"] / 1000, int(d.get("count", 1))))
    out = {}
    for key, seen in acc.items():
        total = sum(n for _, _, n in seen)
        mean = sum(avg * n for _, avg, n in seen) / total if total else seen[0][1]
        out[key] = (min(lo for lo, _, _ in seen), mean, total)
    return out


def propagation_ms(
    ifit: Sequence[Mapping[str, Any]], links: Sequence[Link], frame_bytes: Mapping[str, int]
) -> dict[frozenset[str], float]:
    """Per link (unordered pair of node names): see _propagation_ms."""
    return _propagation_ms(list(_hops(ifit)), links, frame_bytes)


def _propagation_ms(
    hops: Sequence[tuple[frozenset[str], Mapping[str, Any], str]],
    links: Sequence[Link],
    frame_bytes: Mapping[str, int],
) -> dict[frozenset[str], float]:
    """Per link: the least over the IFIT flows that cross it of the flow's per-hop minimum less
    its frame's serialisation at the link's rate. An IFIT flow is named by its topology flow,
    with " on PATH" when the closed loop steered it."""
    rate = {frozenset((lk.a, lk.b)): lk.bw_mbit for lk in links}
    out: dict[frozenset[str], float] = {}
    for key, d, flow in hops:
        size = frame_bytes.get(flow.split(" on ")[0])
        if size is None or not isinstance(d.get("min"), int | float):
            continue
        mbit = rate.get(key)
        ser_ms = size * 8 / (mbit * 1e3) if mbit else 0.0
        prop = d["min"] / 1000 - ser_ms
        out[key] = min(prop, out.get(key, prop))
    return out


def link_rows(
    links: Sequence[Link],
    stats: Mapping[str, LinkStats],
    ifit: Sequence[Mapping[str, Any]],
    element: str,
    frame_bytes: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """One row per link: configured delay / loss / rate beside measured delay and loss."""
    samples = list(_hops(ifit))  # one walk of the IFIT flows' hops
    hops = _hop_delays_ms(samples)
    props = _propagation_ms(samples, links, frame_bytes or {})
    # Hops with an end whose clock the collector only estimated (a BMv2 node: µs since its
    # switch started): the fastest packet is taken to have crossed in the hop's floor, so the
    # delay above it is measured, its absolute value not.
    estimated = {key for key, d, _ in samples if d.get("basis") == "estimated"}
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
        pair = frozenset((lk.a, lk.b))
        hop = hops.get(pair)
        # With an estimated clock, only the delay above the fastest packet is a measurement.
        clock = "estimated" if pair in estimated else "shared"
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
                    "delay_ms": hop[0] if hop else None,  # IFIT minimum (empty queue)
                    # (propagation: the minimum less serialisation)
                    "propagation_ms": None if clock == "estimated" else props.get(pair),
                    "clock": clock,
                    "delay_avg_ms": hop[1] if hop else None,  # with queueing
                    "delay_samples": hop[2] if hop else 0,
                    **measured,
                },
            }
        )
    return rows
