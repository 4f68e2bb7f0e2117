"""cross-dc: two data centres 300 km apart train one model over a 16:1 converged link.

Two phases in one network (topologies/cross-dc.yaml: two GPU hosts per DC, fabric links 16
times faster than the DC interconnect): **one DC** — the GPUs of one DC exchange gradients with
each other over the fabric (each NIC sends at line rate); **two DCs** — each GPU exchanges its
gradient shard with its peer in the other DC over the SRv6 path through the interconnect
(each NIC again at line rate: ECN and the DCQCN-like senders share the converged link).

Training performance is a model, stated in the report. A step computes for `COMPUTE_S`, then
all-reduces a gradient of G bytes per GPU (no overlap with compute: the conservative case).
One DC, N GPUs, ring all-reduce: each GPU sends 2(N-1)/N G at the measured per-GPU fabric
goodput. Two DCs of n GPUs, hierarchical all-reduce: reduce-scatter and all-gather inside each
DC (2(n-1)/n G over the fabric), and between them each GPU swaps its G/n shard with its peer:
G crosses the interconnect each way at the measured interconnect goodput, plus one round trip
of propagation (added analytically: no netem here). G is set so that the single-DC all-reduce
at line rate takes `COMM_FRACTION` of the compute time. Performance = one-DC step time /
two-DC step time (the same GPUs, the same work).
"""

from __future__ import annotations

import dataclasses
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

NAME = "cross-dc"
TITLE = "two DCs train together over a 16:1 converged link: performance against one DC"
COMPUTE_S = 1.0  # compute time of one step (not scaled: times are kept)
COMM_FRACTION = 0.01  # the one-DC all-reduce at line rate takes 1% of the compute time
INTER = ("allreduce-1", "allreduce-2")
INTRA = ("fabric-a1", "fabric-a2")
TARGET = 0.95
# 1000-octet packets (not RoCEv2's 4 KB): the scaled interconnect then carries enough packets a
# second for ECN marks and CNPs to hold the line-rate senders back (their DCQCN-like timers are
# not scaled with bandwidth); the price is more header bytes per payload byte.
PAYLOAD = 1000


def build_topology() -> dict[str, Any]:
    """cross-dc.yaml with intra-DC exchange flows; every NIC offers its fabric line rate."""
    doc: dict[str, Any] = yaml.safe_load((TOPOLOGIES / "cross-dc.yaml").read_text())
    fabric = max(lk["bw_mbit"] for lk in doc["links"] if "bw_mbit" in lk)
    for f in doc["flows"]:
        f["rate_mbit"] = fabric
    # No IFIT on the intra-DC flows: they are not encapsulated, so nothing would trace them.
    doc["flows"] += [
        {"name": INTRA[0], "src": "gpu-a1", "dst": "gpu-a2", "dport": 4791, "qp": 0x311,
         "rate_mbit": fabric, "ifit": False},
        {"name": INTRA[1], "src": "gpu-a2", "dst": "gpu-a1", "dport": 4791, "qp": 0x312,
         "rate_mbit": fabric, "ifit": False},
    ]  # fmt: skip
    return doc


@dataclass(frozen=True)
class AllReduceModel:
    """Step time of data-parallel training: compute, then the gradient all-reduce."""

    compute_s: float
    gradient_bits: float  # G, per GPU
    gpus_per_dc: int

    @classmethod
    def for_fraction(
        cls, compute_s: float, fraction: float, fabric_mbit: float, gpus_per_dc: int
    ) -> AllReduceModel:
        """G such that one DC's ring all-reduce at line rate takes `fraction` of the compute."""
        n = 2 * gpus_per_dc
        return cls(compute_s, fraction * compute_s * fabric_mbit * 1e6 * n / (2 * (n - 1)),
                   gpus_per_dc)  # fmt: skip

    def one_dc_s(self, fabric_mbit: float) -> float:
        n = 2 * self.gpus_per_dc
        return 2 * (n - 1) / n * self.gradient_bits / (fabric_mbit * 1e6)

    def two_dc_s(self, fabric_mbit: float, dci_mbit: float, rtt_s: float) -> float:
        n = self.gpus_per_dc
        intra = 2 * (n - 1) / n * self.gradient_bits / (fabric_mbit * 1e6)
        return intra + self.gradient_bits / (dci_mbit * 1e6) + rtt_s

    def performance(self, fabric_mbit: float, dci_mbit: float, rtt_s: float) -> float:
        if fabric_mbit <= 0 or dci_mbit <= 0:
            return 0.0
        one = self.compute_s + self.one_dc_s(fabric_mbit)
        return one / (self.compute_s + self.two_dc_s(fabric_mbit, dci_mbit, rtt_s))


def run(opts: Options) -> Outcome:
    dataplane, factor = resolve_scale(opts.dataplane, opts.scale)
    base = topology(build_topology(), "cross-dc")
    topo = scaled_topology(base, factor)
    run_dir = run_dir_for(opts, NAME)
    opts.log(f"icpn experiment {NAME}: {TITLE}")
    sc = ExperimentScenario(
        topo, run_dir, opts.dataplane, opts.seconds, opts.log, factor, payload=PAYLOAD
    )
    intra = [f for f in topo.flows if f.name in INTRA]
    inter = [f for f in topo.flows if f.name in INTER]
    with sc.session(cli=opts.cli):
        phases = [sc.phase("one-dc", intra), sc.phase("two-dc", inter)]
        ifit = sc.ifit()
    fabric_bw = max(lk.bw_mbit or 0 for lk in topo.links)
    dci_bw = min(lk.bw_mbit or fabric_bw for lk in topo.links if "dci" in (lk.a, lk.b))
    per_gpu = [f.received_mbit for f in phases[0].flows]
    fabric = sum(per_gpu) / len(per_gpu)
    dci = sum(f.received_mbit for f in phases[1].flows)
    dci_sent = sum(f.sent_mbit for f in phases[1].flows)
    gpus_per_dc = sum(1 for n in topo.nodes if n.name.startswith("gpu-a"))
    one_way_ms = path_delay_ms(base, ["leaf-a", "dci", "leaf-b"])
    rtt = 2 * one_way_ms / 1000
    model = AllReduceModel.for_fraction(COMPUTE_S, COMM_FRACTION, fabric_bw, gpus_per_dc)
    perf = model.performance(fabric, dci, rtt)

    def perf_at(fraction: float) -> float:
        m = AllReduceModel.for_fraction(COMPUTE_S, fraction, fabric_bw, gpus_per_dc)
        return m.performance(fabric, dci, rtt)

    grid = [x / 10000 for x in range(1, 2001)]
    keeps = max((x for x in grid if perf_at(x) >= TARGET), default=None)
    sensitivity = [(x, perf_at(x)) for x in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)]
    (dci_path,) = [p for p in phases[1].paths if p.first_hop == "dci"]
    delays = ifit_delays_us(sc.plan, ifit, INTER)
    figures = [
        Figure(
            "training performance, two DCs vs one",
            "over 95%",
            pct(perf),
            perf,
            f"all-reduce model: {COMPUTE_S:g} s compute, one-DC exchange"
            f" {COMM_FRACTION:.0%} of it at line rate",
        ),
        Figure(
            "interconnect convergence ratio",
            "16:1",
            f"{fabric_bw / dci_bw:g}:1",
            fabric_bw / dci_bw,
            f"fabric {fabric_bw:g} Mbit/s, interconnect {dci_bw:g} Mbit/s (configured)",
        ),
        Figure(
            "interconnect goodput of the gradient exchange",
            "-",
            pct(dci / dci_bw),
            dci / dci_bw,
            f"{dci:.2f} Mbit/s of payload; the port carries {pct(dci_path.utilisation)}"
            " with SRv6/APN/IFIT headers",
        ),
        Figure(
            "exchange traffic lost on the way",
            "- (lossless network)",
            pct(max(0.0, 1 - dci / dci_sent)) if dci_sent else "-",
            max(0.0, 1 - dci / dci_sent) if dci_sent else None,
            "every NIC sends at line rate into the 16:1 link; ECN marks and the senders'"
            " DCQCN-like reaction hold it back (the model charges no retransmission)",
        ),
        Figure(
            "fabric goodput per GPU",
            "-",
            pct(fabric / fabric_bw),
            fabric / fabric_bw,
            f"{fabric:.2f} Mbit/s",
        ),
        Figure(
            "largest one-DC exchange share that keeps 95%",
            "-",
            "-" if keeps is None else f"{keeps:.2%} of compute",
            keeps,
            "the same model with the measured goodputs (see the sensitivity plot)",
        ),
        Figure(
            "IFIT one-way delay across the interconnect",
            "about 1.5 ms (300 km)",
            f"{sum(delays) / len(delays) / 1000:.1f} ms" if delays else "-",
            sum(delays) / len(delays) / 1e6 if delays else None,
            "measured: queueing at the converged link (propagation is not emulated)",
        ),
    ]
    scaling = [
        Scaled(
            "fabric and interconnect",
            "16:1 convergence (topologies/cross-dc.yaml: 160 and 10 Mbit/s)",
            f"{fabric_bw:g} and {dci_bw:g} Mbit/s",
            f"x{factor:g}: what the {dataplane} data plane forwards here; the ratio is kept",
        ),
        Scaled(
            "GPUs",
            "two DCs of many GPUs",
            f"{gpus_per_dc} GPU hosts per DC",
            "one NIC flow per GPU; the all-reduce times scale with the measured goodputs",
        ),
        Scaled(
            "distance",
            "300 km (about 1.5 ms one way)",
            f"{one_way_ms:g} ms one way, added analytically" if not sc.delay_emulated else "netem",
            "this kernel has no netem: the emulated links do not delay packets",
        ),
        Scaled(
            "training step",
            "not stated",
            f"{COMPUTE_S:g} s compute, gradient {model.gradient_bits / 8e6:.3f} MB per GPU",
            "an assumption: bytes scale with bandwidth, times do not; the figure depends on"
            " it (see the sensitivity plot)",
        ),
    ]
    model_text = [
        f"one DC ({2 * gpus_per_dc} GPUs, ring all-reduce): step = compute + 2(N-1)/N G /"
        " fabric goodput per GPU",
        f"two DCs ({gpus_per_dc} + {gpus_per_dc}, hierarchical): step = compute + 2(n-1)/n G /"
        " fabric goodput + G / interconnect goodput + one propagation round trip"
        f" ({1000 * rtt:.0f} ms)",
        f"G = {model.gradient_bits / 8e6:.3f} MB: the one-DC all-reduce at line rate takes"
        f" {COMM_FRACTION:.0%} of the {COMPUTE_S:g} s compute; goodputs are what the receivers"
        " got in each phase, every NIC sending at line rate",
    ]
    report = sc.report(
        NAME,
        TITLE,
        phases,
        ifit,
        figures,
        scaling,
        model_text,
        goodput_mbit={"fabric_per_gpu": fabric, "interconnect": dci},
        performance=perf,
        keeps_95_fraction=keeps,
        step_model=dataclasses.asdict(model),
        sensitivity=sensitivity,
    )
    return finish(NAME, report, run_dir, _plot)


def _plot(report: Mapping[str, Any], run_dir: Path) -> list[Path]:
    plt = plt_module()
    xs = [100 * x for x, _ in report["sensitivity"]]
    ys = [100 * p for _, p in report["sensitivity"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, ys, marker="o", label="emulated (measured goodputs, modelled step)")
    ax.axhline(100 * TARGET, color="black", linestyle="--", label="paper: over 95%")
    ax.axvline(100 * COMM_FRACTION, color="grey", linestyle=":", label="this run's assumption")
    ax.set_xscale("log")
    ax.set_xlabel("one-DC all-reduce time, % of a step's compute")
    ax.set_ylabel("performance vs one DC %")
    ax.set_title("cross-dc: performance vs how communication-heavy the step is")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = run_dir / "cross-dc-performance.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]
