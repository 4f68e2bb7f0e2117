"""elastic: a task's bandwidth changed at run time, from 100 Mbit/s to N x 1 Gbit/s.

One task (a RoCEv2 flow with an APN-ID and a bandwidth intent) runs from a user site to a
data centre over an SRv6 path. Part-way through, the controller changes the task's intent:
it re-plans the headend, whose APN option now carries the new bandwidth parameter, re-pushes
it, and sets the sender's rate to the new figure (the application is told its new share). The
experiment shows the headend's egress rate over time following the step, how long it took to
reach 90% of the new rate, and the APN bandwidth parameter of packets on the wire before and
after (captured at the next node).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyctl.controller.plan import make_plan
from pyctl.experiments.figures import Figure, Scaled
from pyctl.experiments.options import Options, resolve_scale, run_dir_for
from pyctl.experiments.plots import plt_module
from pyctl.experiments.report import Outcome, finish
from pyctl.experiments.session import Action, ExperimentScenario
from pyctl.experiments.sniffer import Sniffer
from pyctl.experiments.topologies import port_towards, topology

NAME = "elastic"
TITLE = "per-task bandwidth changed at run time: 100 Mbit/s -> N x 1 Gbit/s, the headend follows"
N_GBIT = 4  # the paper's N
PAPER_BEFORE_MBIT = 100.0
PAPER_AFTER_MBIT = N_GBIT * 1000.0
UNITS = 0.1  # the topology below is in tenths of the paper's figures
STEP_AT = 0.4  # share of the phase before the change
FOLLOW = 0.9  # "followed" once the headend's egress reaches 90% of the new rate
APN_BANDWIDTH = 0x8000  # APN-Para-Type bit 0: bandwidth, kbit/s

TOPOLOGY: dict[str, Any] = {
    "name": "elastic",
    "description": "One task from a user site to a data centre; its bandwidth intent changes.",
    "sites": [{"name": "user"}, {"name": "dc", "gpus": 64}],
    "nodes": [
        {"name": "task", "kind": "host", "site": "user"},
        {"name": "pe-user", "kind": "auto", "role": "headend", "site": "user"},
        {"name": "pe-dc", "kind": "auto", "role": "egress", "site": "dc"},
        {"name": "server", "kind": "host", "site": "dc"},
        {"name": "collector", "kind": "collector"},
    ],
    # paper 10 Gbit/s access and WAN -> 1000; the task 100 Mbit/s -> 10
    "links": [
        {"a": "task", "b": "pe-user", "bw_mbit": 1000},
        {"a": "pe-user", "b": "pe-dc", "bw_mbit": 1000, "delay_ms": 1},
        {"a": "pe-dc", "b": "server", "bw_mbit": 1000},
        {"a": "pe-dc", "b": "collector"},
    ],
    "policies": [{"name": "user-to-dc", "headend": "pe-user", "egress": "pe-dc", "paths": [[]]}],
    "flows": [
        {
            "name": "task",
            "src": "task",
            "dst": "server",
            "dport": 4791,
            "qp": 0x501,
            "apn": {"app": 5, "user": 1},
            "rate_mbit": PAPER_BEFORE_MBIT * UNITS,
            "sla": {"bandwidth_mbit": PAPER_BEFORE_MBIT * UNITS},
        }
    ],
}


def apn_bandwidths(frames: list[bytes]) -> list[int]:
    """The APN bandwidth parameter (kbit/s) of each frame that carries one."""
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop
    from scapy.layers.l2 import Ether

    from pyctl.packets import APNOption

    out = []
    for frame in frames:
        pkt = Ether(frame)
        hbh = pkt.getlayer(IPv6ExtHdrHopByHop)
        for opt in getattr(hbh, "options", None) or []:
            if isinstance(opt, APNOption) and APN_BANDWIDTH in opt.param_map():
                out.append(int(opt.param_map()[APN_BANDWIDTH]))
                break
    return out


def _mean(samples: list[tuple[float, float]], lo: float, hi: float) -> float | None:
    got = [m for t, m in samples if lo <= t <= hi]
    return sum(got) / len(got) if got else None


def run(opts: Options) -> Outcome:
    dataplane, factor = resolve_scale(opts.dataplane, opts.scale)
    topo = topology(TOPOLOGY, "elastic").scaled(factor)
    run_dir = run_dir_for(opts, NAME)
    opts.log(f"icpn experiment {NAME}: {TITLE}")
    sc = ExperimentScenario(topo, run_dir, opts.dataplane, opts.seconds, opts.log, factor)
    sc.observer = opts.observer  # the live view (--web), if any
    (flow,) = topo.flows
    before_mbit = flow.rate_mbit
    after_mbit = PAPER_AFTER_MBIT * UNITS * factor
    head, nxt = "pe-user", "pe-dc"
    in_port, out_port = port_towards(sc.plan, nxt, head), port_towards(sc.plan, nxt, "server")
    step_at = round(STEP_AT * opts.seconds, 2)
    sniffed: dict[str, Sniffer] = {}
    step: dict[str, float] = {}

    def sniff(label: str) -> Callable[[], None]:
        def do() -> None:
            sniffed[label] = Sniffer(sc, nxt, in_port).start(0.25, limit=20)

        return do

    def change() -> None:
        t0 = time.monotonic()
        step["at"] = sc.elapsed()
        bigger = dataclasses.replace(
            flow,
            rate_mbit=after_mbit,
            sla=dataclasses.replace(flow.sla, bandwidth_mbit=after_mbit),
        )
        plan = make_plan(dataclasses.replace(topo, flows=(bigger,)))
        sc.apply(head, plan.switches[head])
        step["repush_s"] = time.monotonic() - t0
        sc.set_rate(flow.name, after_mbit)
        step["done_s"] = time.monotonic() - t0

    actions = [
        Action(max(0.3, step_at - 0.5), "capture the task's packets (before)", sniff("before")),
        Action(step_at, f"intent: {flow.name} {before_mbit:g} -> {after_mbit:g} Mbit/s", change),
        Action(step_at + 0.8, "capture the task's packets (after)", sniff("after")),
    ]
    with sc.session(cli=opts.cli):
        phase = sc.phase("elastic", [flow], actions=actions, sample_s=0.1, watch=[(nxt, out_port)])
        ifit = sc.ifit()
    apn = {label: apn_bandwidths(s.wait()) for label, s in sniffed.items()}
    (delivered,) = phase.watched.values()
    at = step.get("at", step_at)
    rate_before = _mean(delivered, 0.5, at - 0.1)
    rate_after = _mean(delivered, at + 1.0, opts.seconds - 0.2)
    follow_s = next((t - at for t, m in delivered if t > at and m >= FOLLOW * after_mbit), None)
    paper_per_mbit = 1 / (UNITS * factor)

    def shown(mbit: float | None) -> str:
        if mbit is None:
            return "-"
        return f"{mbit:.2f} Mbit/s (= {mbit * paper_per_mbit:,.0f} Mbit/s at paper scale)"

    def apn_shown(values: list[int]) -> str:
        return f"{max(set(values), key=values.count)} kbit/s" if values else "- (no packet seen)"

    figures = [
        Figure("task bandwidth before the change", "100 Mbit/s", shown(rate_before), rate_before,
               "delivered to the data centre, mean"),
        Figure("task bandwidth after the change", f"N x 1 Gbit/s (N = {N_GBIT})",
               shown(rate_after), rate_after, "delivered, mean from 1 s after the change"),
        Figure("delivered rate reaches 90% of the new intent", "at run time (no figure)",
               "-" if follow_s is None else f"{follow_s:.2f} s after the intent changed",
               follow_s, f"re-push of the headend took {step.get('repush_s', 0):.2f} s"),
        Figure("APN bandwidth parameter on the wire", "(per-task bandwidth in APN)",
               f"{apn_shown(apn.get('before', []))} -> {apn_shown(apn.get('after', []))}",
               None, f"captured at {nxt} from {head}"),
    ]  # fmt: skip
    scaling = [
        Scaled(
            "task bandwidth",
            f"100 Mbit/s -> {N_GBIT} x 1 Gbit/s",
            f"{before_mbit:g} -> {after_mbit:g} Mbit/s",
            f"x{UNITS * factor:g}: what the {dataplane} data plane and a Python sender carry"
            " here; the step keeps the paper's ratio (40x)",
        ),
        Scaled(
            "access and WAN links",
            "10 Gbit/s",
            f"{1000 * factor:g} Mbit/s",
            "scaled alike, so the new rate fits as it does in the paper",
        ),
        Scaled(
            "propagation delay",
            "1 ms one way",
            "1 ms one way on the WAN link (the link element delays every frame)",
            "kept: a rate step does not depend on it",
        ),
    ]
    model = [
        f"task bandwidth = UDP payload rate {nxt} sends to the server (its port counters every"
        " 0.1 s: frame bytes less the Ethernet, IPv6 and UDP headers), in the intent's terms;"
        " the headend's egress (plotted too) carries the SRv6, APN and IFIT headers on top",
        "the change: the controller re-plans the task with the new bandwidth intent, re-pushes"
        " the headend (its APN option carries the new bandwidth parameter) and restarts the"
        " sender at the new rate (same QP and ports)",
    ]
    report = sc.report(
        NAME,
        TITLE,
        [phase],
        ifit,
        figures,
        scaling,
        model,
        step={"at_s": at, **{k: round(v, 3) for k, v in step.items() if k != "at"}},
        intent_mbit={"before": before_mbit, "after": after_mbit},
        measured_mbit={"before": rate_before, "after": rate_after},
        follow_s=follow_s,
        apn_bandwidth_kbps=apn,
    )
    return finish(NAME, report, run_dir, _plot)


def _plot(report: Mapping[str, Any], run_dir: Path) -> list[Path]:
    plt = plt_module()
    (phase,) = report["phases"]
    (path,) = phase["paths"]
    (delivered,) = phase["watched"].values()
    intent = report["intent_mbit"]
    at = report["step"]["at_s"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for series, label in ((path["samples"], "headend egress (encapsulated)"),
                          (delivered, "delivered to the server (payload)")):  # fmt: skip
        ax.plot([t for t, _ in series], [m for _, m in series], label=label)
    end = phase["seconds"]
    ax.step(
        [0, at, end],
        [intent["before"], intent["after"], intent["after"]],
        where="post",
        linestyle="--",
        color="black",
        label="intent",
    )
    ax.axvline(at, color="grey", linestyle=":")
    ax.set_yscale("log")  # a 40x step: both levels readable
    ax.set_ylim(intent["before"] / 4, intent["after"] * 2)
    ax.set_xlabel("s")
    ax.set_ylabel("Mbit/s")
    ax.set_title(f"elastic: {intent['before']:g} -> {intent['after']:g} Mbit/s at {at:.1f} s")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = run_dir / "elastic-rate.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]
