"""remote-storage: training reads its data from storage one site away (Hangzhou -> Jinhua, 200 km).

Two phases in one network (topologies/storage-compute.yaml plus a storage host at the compute
site): the trainer reads its dataset from **local** storage (same site, one switch), then from
the **remote** storage over the metro ring (two SRv6 paths, APN-keyed deep hashing). Both
offer the same read demand; the emulation measures the goodput each delivers.

Compute efficiency is a model, stated in the report: a training step computes for
`COMPUTE_S` and then fetches its next batch (no overlap: the conservative case); a batch is
what the read demand delivers in `READ_FRACTION` of a step. Fetch time = batch / measured
goodput + one request round trip of propagation (from the links' delay_ms: netem is absent
here, so the delay is added analytically). Efficiency = local step time / remote step time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyctl.experiments.common import (
    TOPOLOGIES,
    ExperimentScenario,
    Figure,
    Options,
    Outcome,
    Scaled,
    finish,
    ifit_delays_us,
    path_delay_ms,
    pct,
    plt_module,
    resolve_scale,
    run_dir_for,
    scaled_topology,
    topology,
)

NAME = "remote-storage"
TITLE = "training reads from storage 200 km away: compute efficiency against local reads"
COMPUTE_S = 1.0  # compute time of one training step (not scaled: times are kept)
READ_FRACTION = 0.1  # reading a batch from local storage takes 10% of a step's compute
LOCAL_READ = "local-read"
REMOTE_READS = ("dataset-read-1", "dataset-read-2")


def build_topology() -> dict[str, Any]:
    """storage-compute.yaml with a storage host at the compute site and its read flow."""
    doc: dict[str, Any] = yaml.safe_load((TOPOLOGIES / "storage-compute.yaml").read_text())
    demand = sum(f["rate_mbit"] for f in doc["flows"] if f["name"] in REMOTE_READS)
    doc["nodes"].append({"name": "local-storage", "kind": "host", "site": "jinhua"})
    doc["links"].append({"a": "pe-jh", "b": "local-storage", "bw_mbit": 400})
    # No IFIT: the compute site's edge is the remote flows' IFIT tail, and a node has one role.
    doc["flows"].append(
        {"name": LOCAL_READ, "src": "local-storage", "dst": "trainer", "dport": 4791,
         "qp": 0x2FF, "rate_mbit": demand, "ifit": False}
    )  # fmt: skip
    return doc


@dataclass(frozen=True)
class StepModel:
    """A training step: compute, then fetch the next batch (request round trip + transfer)."""

    compute_s: float
    batch_bits: float

    def step_s(self, goodput_mbit: float, rtt_s: float) -> float:
        if goodput_mbit <= 0:
            return float("inf")
        return self.compute_s + rtt_s + self.batch_bits / (goodput_mbit * 1e6)

    def efficiency(
        self, local_mbit: float, local_rtt_s: float, remote_mbit: float, remote_rtt_s: float
    ) -> float:
        """Local step time / remote step time (1.0: reading remotely costs nothing)."""
        return self.step_s(local_mbit, local_rtt_s) / self.step_s(remote_mbit, remote_rtt_s)


def run(opts: Options) -> Outcome:
    dataplane, factor = resolve_scale(opts.dataplane, opts.scale)
    base = topology(build_topology(), "remote-storage")
    topo = scaled_topology(base, factor)
    run_dir = run_dir_for(opts, NAME)
    opts.log(f"icpn experiment {NAME}: {TITLE}")
    sc = ExperimentScenario(topo, run_dir, opts.dataplane, opts.seconds, opts.log, factor)
    local = [f for f in topo.flows if f.name == LOCAL_READ]
    remote = [f for f in topo.flows if f.name in REMOTE_READS]
    with sc.session(cli=opts.cli):
        phases = [sc.phase("local", local), sc.phase("remote", remote)]
        ifit = sc.ifit()
    goodput = {p.name: sum(f.received_mbit for f in p.flows) for p in phases}
    demand = sum(f.rate_mbit for f in remote)
    one_way_ms = {
        "local": path_delay_ms(base, ["local-storage", "pe-jh", "trainer"]),
        "remote": path_delay_ms(base, ["storage", "pe-hz", "ring-a", "pe-jh", "trainer"]),
    }
    rtt_s = {k: 2 * v / 1000 for k, v in one_way_ms.items()}
    model = StepModel(COMPUTE_S, READ_FRACTION * COMPUTE_S * demand * 1e6)
    eff = model.efficiency(goodput["local"], rtt_s["local"], goodput["remote"], rtt_s["remote"])
    sensitivity = [
        (fr, StepModel(COMPUTE_S, fr * COMPUTE_S * demand * 1e6).efficiency(
            goodput["local"], rtt_s["local"], goodput["remote"], rtt_s["remote"]))
        for fr in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    ]  # fmt: skip
    delays = ifit_delays_us(sc.plan, ifit, REMOTE_READS)
    figures = [
        Figure(
            "compute efficiency, storage 200 km away vs local",
            "97%",
            pct(eff),
            eff,
            f"step model: {COMPUTE_S:g} s compute + fetch; local read = {READ_FRACTION:.0%}"
            " of compute",
        ),
        Figure(
            "read goodput, remote / local",
            "- (not reported)",
            pct(goodput["remote"] / goodput["local"]) if goodput["local"] else "-",
            goodput["remote"] / goodput["local"] if goodput["local"] else None,
            f"{goodput['remote']:.2f} vs {goodput['local']:.2f} Mbit/s for a"
            f" {demand:g} Mbit/s demand",
        ),
        Figure(
            "request round trip, remote",
            "about 2 ms (200 km)",
            f"{1000 * rtt_s['remote']:.1f} ms",
            rtt_s["remote"],
            "propagation from the links' delay_ms, added analytically (no netem)"
            if not sc.delay_emulated
            else "propagation from the links' delay_ms",
        ),
        Figure(
            "IFIT one-way delay of the remote reads",
            "-",
            f"{sum(delays) / len(delays) / 1000:.2f} ms" if delays else "-",
            sum(delays) / len(delays) / 1e6 if delays else None,
            "measured: processing and queueing in the emulated nodes (not in the model)",
        ),
    ]
    ring_bw = next((lk.bw_mbit for lk in topo.links if "ring-a" in (lk.a, lk.b)), None)
    scaling = [
        Scaled(
            "metro ring",
            "100 Gbit/s (topologies/storage-compute.yaml models it as 200 Mbit/s a path)",
            f"{ring_bw:g} Mbit/s a path" if ring_bw else "-",
            f"x{factor:g}: what the {dataplane} data plane forwards here; the read demand and"
            " the batch size are scaled alike, so transfer times keep the paper's proportions",
        ),
        Scaled(
            "read demand",
            "the training job's dataset reads",
            f"{demand:g} Mbit/s, local and remote alike",
            "two RoCEv2 QPs remotely (one per ring path by deep hashing), one QP locally",
        ),
        Scaled(
            "distance",
            "200 km (about 1 ms one way)",
            f"{one_way_ms['remote']:g} ms one way, added analytically"
            if not sc.delay_emulated
            else "netem",
            "this kernel has no netem: the emulated links do not delay packets",
        ),
        Scaled(
            "training step",
            "not stated",
            f"{COMPUTE_S:g} s compute, batch = {model.batch_bits / 8e6:.2f} MB",
            "an assumption: the efficiency figure depends on it (see the sensitivity plot)",
        ),
    ]
    model_text = [
        f"step time = {COMPUTE_S:g} s compute + fetch of the next batch (no overlap, the"
        " conservative case); fetch = request round trip + batch / measured read goodput",
        f"batch = what the read demand delivers in {READ_FRACTION:.0%} of a step"
        f" ({model.batch_bits / 8e6:.2f} MB at this scale): bytes scale with bandwidth, times"
        " do not",
        "efficiency = local step time / remote step time; goodput = bytes the trainer received"
        " / receive time, per phase",
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
        rtt_s=rtt_s,
        efficiency=eff,
        step_model={"compute_s": COMPUTE_S, "batch_bits": model.batch_bits},
        sensitivity=sensitivity,
    )
    return finish(NAME, report, run_dir, _plot)


def _plot(report: Mapping[str, Any], run_dir: Path) -> list[Path]:
    plt = plt_module()
    xs = [100 * fr for fr, _ in report["sensitivity"]]
    ys = [100 * e for _, e in report["sensitivity"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, ys, marker="o", label="emulated (measured goodput, modelled step)")
    ax.axhline(97, color="black", linestyle="--", label="paper: 97%")
    ax.axvline(100 * READ_FRACTION, color="grey", linestyle=":", label="this run's assumption")
    ax.set_xscale("log")
    ax.set_xlabel("local batch read time, % of a step's compute")
    ax.set_ylabel("compute efficiency %")
    ax.set_title("remote-storage: efficiency vs how read-heavy the step is")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = run_dir / "remote-storage-efficiency.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]
