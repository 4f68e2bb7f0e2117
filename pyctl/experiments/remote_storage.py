"""remote-storage: training reads its data from storage one site away (Hangzhou -> Jinhua, 200 km).

Two phases in one network (topologies/storage-compute.yaml plus a storage host at the compute
site): the trainer fetches its batches from **local** storage (same site, one switch), then
from the **remote** storage over the metro ring (1 ms each way through the link element, two
SRv6 paths, one RDMA QP per path by APN-keyed deep hashing, each carrying half of a batch).

Every fetch is a real transfer: the storage's RC sender moves one batch (windowed, go-back-N)
and records the time from its first packet to the acknowledgement of its last: the transfer
plus one round trip over the delayed links, which is what the trainer waits between its
request and its last byte (request one way, data the other). A remote fetch takes as long as
the slower of its two halves.

What is modelled (a GPU cannot run here): a training step computes for `COMPUTE_S`, then
fetches its next batch (no overlap: the conservative case); a batch is what the read demand
(the topology's 300 Mbit/s) delivers in `READ_FRACTION` of a step. Efficiency = local step time
/ remote step time, each with the mean measured fetch time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyctl.experiments.figures import Figure, Scaled, ifit_delays_us, pct
from pyctl.experiments.options import Options, resolve_scale, run_dir_for
from pyctl.experiments.plots import plt_module
from pyctl.experiments.report import Outcome, finish
from pyctl.experiments.session import ExperimentScenario
from pyctl.experiments.topologies import TOPOLOGIES, path_delay_ms, topology

NAME = "remote-storage"
TITLE = "training reads from storage 200 km away: compute efficiency against local reads"
COMPUTE_S = 1.0  # compute time of one training step (not scaled: times are kept)
READ_FRACTION = 0.1  # the read demand delivers a batch in 10% of a step's compute
FETCHES = 8  # batches fetched per phase
# Each read QP's window: 20 ms at its line rate, far above the 2 ms round trip of 200 km, so
# that what the emulated hosts and switches add to it (milliseconds on this VM) does not cap
# the reads; a window a real NIC would run on a metro link.
WINDOW_MS = 20
LOCAL_READ = "local-read"
REMOTE_READS = ("dataset-read-1", "dataset-read-2")


def build_topology() -> dict[str, Any]:
    """storage-compute.yaml with a storage host at the compute site, every read an RC QP at its
    link's line rate (the NIC's rate; the window and DCQCN decide what it sustains)."""
    doc: dict[str, Any] = yaml.safe_load((TOPOLOGIES / "storage-compute.yaml").read_text())
    demand = sum(f["rate_mbit"] for f in doc["flows"] if f["name"] in REMOTE_READS)
    ring = min(lk["bw_mbit"] for lk in doc["links"] if "ring-a" in (lk["a"], lk["b"]))
    access = max(lk["bw_mbit"] for lk in doc["links"] if "storage" in (lk["a"], lk["b"]))
    doc["nodes"].append({"name": "local-storage", "kind": "host", "site": "jinhua"})
    doc["links"].append({"a": "pe-jh", "b": "local-storage", "bw_mbit": access})
    for f in doc["flows"]:
        if f["name"] in REMOTE_READS:
            f.update(rate_mbit=ring, window_kb=ring * WINDOW_MS / 8)
    # No IFIT: the compute site's edge is the remote flows' IFIT tail, and a node has one role.
    doc["flows"].append(
        {"name": LOCAL_READ, "src": "local-storage", "dst": "trainer", "dport": 4791,
         "qp": 0x2FF, "rate_mbit": access, "window_kb": access * WINDOW_MS / 8, "ifit": False}
    )  # fmt: skip
    doc["demand_mbit"] = demand
    return doc


@dataclass(frozen=True)
class StepModel:
    """A training step: compute, then fetch the next batch (a measured transfer)."""

    compute_s: float

    def step_s(self, fetch_s: float) -> float:
        return self.compute_s + fetch_s

    def efficiency(self, local_fetch_s: float, remote_fetch_s: float) -> float:
        """Local step time / remote step time (1.0: reading remotely costs nothing)."""
        return self.step_s(local_fetch_s) / self.step_s(remote_fetch_s)


def remote_fetches(halves: Sequence[Sequence[float]]) -> list[float]:
    """Each remote batch's time: the slower of its halves (one QP per ring path)."""
    return [max(pair) for pair in zip(*halves, strict=False)]


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def run(opts: Options) -> Outcome:
    dataplane, factor = resolve_scale(opts.dataplane, opts.scale)
    doc = build_topology()
    demand = float(doc.pop("demand_mbit"))
    base = topology(doc, "remote-storage")
    topo = base.scaled(factor)
    run_dir = run_dir_for(opts, NAME)
    opts.log(f"icpn experiment {NAME}: {TITLE}")
    sc = ExperimentScenario(topo, run_dir, opts.dataplane, opts.seconds, opts.log, factor)
    sc.observer = opts.observer  # the live view (--web), if any
    local = [f for f in topo.flows if f.name == LOCAL_READ]
    remote = [f for f in topo.flows if f.name in REMOTE_READS]
    batch_bytes = round(READ_FRACTION * COMPUTE_S * demand * factor * 1e6 / 8)
    sc.sender_args[LOCAL_READ] = ["--fetch-bytes", str(batch_bytes), "--fetches", str(FETCHES)]
    for f in remote:
        half = -(-batch_bytes // len(remote))
        sc.sender_args[f.name] = ["--fetch-bytes", str(half), "--fetches", str(FETCHES)]
    with sc.session(cli=opts.cli):
        phases = [sc.phase("local", local), sc.phase("remote", remote)]
        ifit = sc.ifit()
    fetch_s = {
        "local": list(phases[0].flows[0].fetch_s),
        "remote": remote_fetches([f.fetch_s for f in phases[1].flows]),
    }
    mean_s = {k: _mean(v) for k, v in fetch_s.items()}
    model = StepModel(COMPUTE_S)
    eff = (
        model.efficiency(mean_s["local"], mean_s["remote"])
        if mean_s["local"] is not None and mean_s["remote"] is not None
        else None
    )
    goodput = {k: batch_bytes * 8 / v / 1e6 if v else 0.0 for k, v in mean_s.items()}
    one_way_ms = {
        "local": path_delay_ms(base, ["local-storage", "pe-jh", "trainer"]),
        "remote": path_delay_ms(base, ["storage", "pe-hz", "ring-a", "pe-jh", "trainer"]),
    }
    ring_bw = next((lk.bw_mbit for lk in topo.links if "ring-a" in (lk.a, lk.b)), None) or 0.0
    access_bw = next((lk.bw_mbit for lk in topo.links if "trainer" in (lk.a, lk.b)), None) or 0.0
    # What the links alone allow: the batch at the line rate of its links (the trainer's access
    # locally; two ring paths remotely, each half a batch), plus one round trip of propagation.
    floor_s = {
        "local": batch_bytes * 8 / (access_bw * 1e6) + 2 * one_way_ms["local"] / 1000,
        "remote": batch_bytes * 8 / (2 * ring_bw * 1e6) + 2 * one_way_ms["remote"] / 1000,
    }
    delays = ifit_delays_us(sc.plan, ifit, REMOTE_READS)

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{1000 * x:.1f} ms"

    figures = [
        Figure(
            "compute efficiency, storage 200 km away vs local",
            "97%",
            pct(eff),
            eff,
            f"step: {COMPUTE_S:g} s compute + a measured batch fetch; a batch ="
            f" {READ_FRACTION:.0%} of a step at the read demand",
        ),
        Figure(
            "batch fetch time, local / remote (mean)",
            "-",
            f"{ms(mean_s['local'])} / {ms(mean_s['remote'])}",
            mean_s["remote"],
            f"{len(fetch_s['local'])} / {len(fetch_s['remote'])} fetches of"
            f" {batch_bytes / 1e6:.3f} MB: transfer + one round trip over the delayed links",
        ),
        Figure(
            "what the links allow, local / remote",
            "-",
            f"{ms(floor_s['local'])} / {ms(floor_s['remote'])}",
            floor_s["remote"],
            "the batch at line rate plus one propagation round trip; the rest is what the"
            " emulated hosts and switches add",
        ),
        Figure(
            "read goodput, remote / local",
            "- (not reported)",
            pct(goodput["remote"] / goodput["local"]) if goodput["local"] else "-",
            goodput["remote"] / goodput["local"] if goodput["local"] else None,
            f"{goodput['remote']:.2f} vs {goodput['local']:.2f} Mbit/s: batch / fetch time",
        ),
        Figure(
            "IFIT one-way delay of the remote reads",
            "about 1 ms (200 km)",
            f"{sum(delays) / len(delays) / 1000:.2f} ms" if delays else "-",
            sum(delays) / len(delays) / 1e6 if delays else None,
            "measured: 1 ms of propagation in the link element, plus queueing and processing",
        ),
    ]
    scaling = [
        Scaled(
            "metro ring",
            "100 Gbit/s (topologies/storage-compute.yaml models it as 200 Mbit/s a path)",
            f"{ring_bw:g} Mbit/s a path",
            f"x{factor:g}: what the {dataplane} data plane forwards here; the batch and the"
            " windows are scaled alike, so transfer times keep the paper's proportions",
        ),
        Scaled(
            "distance",
            "200 km (about 1 ms one way)",
            f"{one_way_ms['remote']:g} ms one way, in the link element",
            "kept: every fetch waits one real round trip",
        ),
        Scaled(
            "reads",
            "RDMA reads of the training data",
            f"{FETCHES} batches of {batch_bytes / 1e6:.3f} MB a phase; RC QPs with a"
            f" {WINDOW_MS} ms window at line rate, go-back-N",
            "one QP locally; two remotely (one per ring path), half a batch each",
        ),
        Scaled(
            "training step",
            "not stated",
            f"{COMPUTE_S:g} s compute, then the fetch (no overlap)",
            "modelled: no GPU here; the efficiency depends on how read-heavy the step is",
        ),
    ]
    model_text = [
        f"step time = {COMPUTE_S:g} s compute + the mean measured fetch time (no overlap, the"
        " conservative case); efficiency = local step time / remote step time",
        "fetch time = the storage sender's time from a batch's first packet to the"
        " acknowledgement of its last (transfer + one round trip); remotely the slower half",
        f"batch = what the read demand ({demand * factor:g} Mbit/s here) delivers in"
        f" {READ_FRACTION:.0%} of a step: bytes scale with bandwidth, times do not",
    ]
    report = sc.report(
        NAME,
        TITLE,
        phases,
        ifit,
        figures,
        scaling,
        model_text,
        goodput_mbit=goodput,
        fetch_s=fetch_s,
        mean_fetch_s=mean_s,
        floor_s=floor_s,
        batch_bytes=batch_bytes,
        efficiency=eff,
        step_model={"compute_s": COMPUTE_S, "read_fraction": READ_FRACTION},
    )
    return finish(NAME, report, run_dir, _plot)


def _plot(report: Mapping[str, Any], run_dir: Path) -> list[Path]:
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, colour in (("local", "#999"), ("remote", "#48c")):
        times = report["fetch_s"][name]
        ax.plot(
            range(1, len(times) + 1),
            [1000 * t for t in times],
            marker="o",
            color=colour,
            label=f"{name} (mean {1000 * (report['mean_fetch_s'][name] or 0):.1f} ms)",
        )
        ax.axhline(1000 * report["floor_s"][name], color=colour, linestyle=":",
                   label=f"{name}: line rate + propagation")  # fmt: skip
    eff = report["efficiency"]
    ax.set_xlabel("batch")
    ax.set_ylabel("fetch time, ms")
    ax.set_title(f"remote-storage: efficiency {100 * (eff or 0):.1f}% (paper: 97%)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = run_dir / "remote-storage-efficiency.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]
