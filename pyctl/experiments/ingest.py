"""ingest: the 3,000 km data-ingest pilot (Shanghai -> Ningxia over four concurrent SRv6 paths).

The same bulk transfer (four RoCEv2 QPs, one APN-ID each) runs three times in one network:

1. **one SRv6 path** — every bucket of the headend's policy on the first SID list;
2. **four paths, 5-tuple ECMP** — the policy with all four SID lists and `deep_hash: false`:
   every flow hashes on its flow key (addresses + QP), so flows can collide on one path;
3. **four paths, APN-keyed deep hashing** — the planned policy: elephants hash on their APN-ID,
   whose buckets the controller pins to distinct SID lists (`spread_elephants`).

The figure is the mean utilisation of the headend's four backbone ports (the paper: 20% with
one path, over 90% with multi-path transfer). Every backbone path delays frames 15 ms each way
(the link element), and each QP is a reliable connection as an RDMA NIC runs it: it offers its
NIC's rate, keeps at most a window unacknowledged, and goes back N on a loss. What a path
carries is what the QPs on it sustain, not what they offer:

* a QP alone on its path sustains min(path rate, window / round trip): the window (three times
  the path's 30 ms bandwidth-delay product) covers round trips up to 90 ms, so it fills its path;
* QPs sharing a path fill it (their windows add up to twelve bandwidth-delay products), and the
  excess waits in the path's queue: ECN marks, DCQCN back-off, tail drops and go-back-N
  retransmissions follow. One path so carries at most a quarter of the backbone, whatever the
  QPs offer, and less when their reaction over a 30 ms round trip idles it;
* so the figure counts the paths that carry a QP: one, those the 5-tuple hash picks, or all four
  when the controller pins each elephant's APN-ID to its own SID list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyctl import constants as C
from pyctl.experiments.figures import Figure, Scaled, pct
from pyctl.experiments.options import Options, resolve_scale, run_dir_for
from pyctl.experiments.plots import plt_module
from pyctl.experiments.report import Outcome, finish
from pyctl.experiments.session import ExperimentScenario
from pyctl.experiments.topologies import path_delay_ms, roce, topology
from pyctl.model.node import NodeConfig
from pyctl.model.topology import Topology
from pyctl.net.scenario import EBPF_SCALE, single_path

NAME = "ingest"
TITLE = "the 3,000 km data-ingest pilot: one SRv6 path vs 5-tuple ECMP vs APN-keyed deep hashing"
PHASES = ("single-path", "ecmp-5tuple", "apn-deep-hash")
PAPER_BACKBONE_GBIT = 100  # per path, as topologies/ingest.yaml models the pilot
USED = 0.1  # a path carrying more than this share of its capacity counts as used
WINDOW_BDPS = 3  # topologies/ingest.yaml's window_kb over a backbone path's 30 ms BDP
ELEPHANT_SHARE = 0.05  # a flow sending 5% of a backbone path's capacity is an elephant


def with_elephant_share(
    topo: Topology, path_mbit: float, share: float = ELEPHANT_SHARE
) -> Topology:
    """The elephant threshold as a share of a backbone path's capacity per window.

    The topology's 500 kB per 100 ms (40 Mbit/s) is close to what congestion control leaves a
    bulk flow that starts on a congested path, so such a flow may never count as an elephant;
    the pilot's 100 Gbit/s paths put the same threshold at 0.04% of a path.
    """
    features = dict(topo.features)
    ele = dict(features.get("elephant") or {})  # type: ignore[call-overload]
    window_us = int(ele.get("window_us", C.ELEPHANT_WINDOW_US_DEFAULT))
    ele["threshold_bytes"] = max(1, int(share * path_mbit * 1e6 * window_us / 1e6 / 8))
    features["elephant"] = ele
    return dataclasses.replace(topo, features=features)


def ecmp_5tuple(cfg: NodeConfig) -> NodeConfig:
    """All SID lists, every flow hashed on its 5-tuple / QP key (no APN deep hashing)."""
    pols = tuple(dataclasses.replace(p, deep_hash=False) for p in cfg.policies)
    return dataclasses.replace(cfg, policies=pols)


def run(opts: Options) -> Outcome:
    dataplane, factor = resolve_scale(opts.dataplane, opts.scale, EBPF_SCALE)
    base = topology("ingest.yaml")
    path_mbit = min(lk.bw_mbit or 0 for lk in base.links if "pe-sh" in (lk.a, lk.b)) * factor
    topo = with_elephant_share(base.scaled(factor), path_mbit)
    run_dir = run_dir_for(opts, NAME)
    opts.log(f"icpn experiment {NAME}: {TITLE}")
    sc = ExperimentScenario(topo, run_dir, opts.dataplane, opts.seconds, opts.log, factor)
    sc.observer = opts.observer  # the live view (--web), if any
    flows = roce(topo.flows)
    planned = {sw: cfg for sw, cfg in sc.plan.switches.items() if cfg.policies}
    with sc.session(cli=opts.cli):
        phases = [
            sc.phase(PHASES[0], flows, configs={s: single_path(c) for s, c in planned.items()}),
            sc.phase(PHASES[1], flows, configs={s: ecmp_5tuple(c) for s, c in planned.items()}),
            sc.phase(PHASES[2], flows, configs=planned),
        ]
        ifit = sc.ifit()
    util = {p.name: p.mean_utilisation() for p in phases}
    used = {
        p.name: sum(1 for q in p.paths if q.utilisation is not None and q.utilisation > USED)
        for p in phases
    }
    goodput = {p.name: sum(f.received_mbit for f in p.flows) for p in phases}
    resent = {p.name: sum(f.retransmits for f in p.flows) for p in phases}
    path_bw = next((p.bw_mbit for p in phases[0].paths if p.bw_mbit), None) or 0.0
    n_paths = len(phases[0].paths)
    share = {k: v / (n_paths * path_bw) if path_bw else None for k, v in goodput.items()}
    speedup = goodput[PHASES[2]] / goodput[PHASES[0]] if goodput[PHASES[0]] else None
    figures = [
        Figure(
            "backbone port utilisation, one SRv6 path",
            "20%",
            pct(util[PHASES[0]]),
            util[PHASES[0]],
            f"{used[PHASES[0]]} of {n_paths} paths carry the four QPs: at most 25%",
        ),
        Figure(
            "backbone port utilisation, 5-tuple ECMP",
            "- (not reported)",
            pct(util[PHASES[1]]),
            util[PHASES[1]],
            f"{used[PHASES[1]]} of {n_paths} paths used: QPs collide on their 5-tuple hash",
        ),
        Figure(
            "backbone port utilisation, APN deep hashing",
            "over 90%",
            pct(util[PHASES[2]]),
            util[PHASES[2]],
            f"{used[PHASES[2]]} of {n_paths} paths used, one QP each",
        ),
        Figure(
            "delivered payload / backbone capacity, per phase",
            "-",
            " / ".join(pct(share[n]) for n in PHASES),
            share[PHASES[2]],
            "in PSN order at the receivers; "
            + ", ".join(f"{resent[n]} packets resent" for n in PHASES)
            + " (go-back-N)",
        ),
        Figure(
            "bulk goodput, deep hashing / one path",
            "about 4.5x (implied by 20% -> 90%)",
            "-" if speedup is None else f"{speedup:.2f}x",
            speedup,
            f"{goodput[PHASES[0]]:.2f} -> {goodput[PHASES[2]]:.2f} Mbit/s",
        ),
    ]
    delay = path_delay_ms(base, ["pe-sh", "p1", "pe-nx"])
    bulk = flows[0]
    bdp_kb = path_bw * 2 * delay / 8  # Mbit/s x ms / 8 = kB
    backbone = next(lk for lk in topo.links if "pe-sh" in (lk.a, lk.b) and lk.delay_ms)
    ecn = topo.features.get("ecn") or {}
    scaling = [
        Scaled(
            "backbone path capacity",
            f"{PAPER_BACKBONE_GBIT} Gbit/s each, four paths",
            f"{path_bw:g} Mbit/s each",
            f"x{factor:g} on topologies/ingest.yaml's 100 Mbit/s: what the {dataplane} data"
            " plane and Python hosts carry on this VM; rates and windows are scaled alike",
        ),
        Scaled(
            "propagation delay",
            f"about {delay:g} ms one way (3,000 km of fibre)",
            f"{delay:g} ms one way on each backbone path, in the link element",
            "kept: a QP sustains at most its window per round trip",
        ),
        Scaled(
            "bulk transfer",
            "the pilot's data-ingest traffic",
            f"{len(flows)} RC QPs offering {bulk.rate_mbit:g} Mbit/s each (their NIC's share),"
            f" window {bulk.window_kb or 0:g} kB = {WINDOW_BDPS} x a path's {bdp_kb:g} kB BDP",
            "the window covers a 90 ms round trip: the 30 ms of propagation plus what the"
            " emulated hosts and switches add here (tens of ms on a loaded VM), as a real NIC's"
            " is sized above its path's BDP; one APN-ID per QP",
        ),
        Scaled(
            "backbone buffer and ECN",
            "not stated",
            f"{backbone.buffer_bytes() / 1e6:g} MB a port; ECN from"
            f" {int(ecn.get('kmin_bytes', 0)) // 1000} kB to"  # type: ignore[attr-defined]
            f" {int(ecn.get('kmax_bytes', 0)) // 1000} kB",  # type: ignore[attr-defined]
            "a deep WAN buffer (100 ms at 100 Mbit/s), marking above the 2 BDP a lone QP's"
            " window can queue; bytes, not scaled (at a smaller scale they hold more time)",
        ),
        Scaled(
            "elephant threshold",
            "not stated (topologies/ingest.yaml: 150 kB per 100 ms)",
            f"{_threshold(topo)} B per 100 ms: {ELEPHANT_SHARE:.0%} of a path",
            "a share of the path, so a QP that starts on a congested path (5-tuple hash before"
            " detection) and is throttled there still counts as an elephant",
        ),
    ]
    model = [
        "utilisation = mean over the headend's four backbone links of the bit rate each"
        " carried (the link element's transmitted frames, sampled every 0.25 s, from 0.5 s to"
        " the end of the phase) / capacity; resent packets count, as on a real port",
        "one SRv6 path: the policy's bucket table all on SID list 0 (re-pushed to the headend);"
        " 5-tuple ECMP: deep_hash off; deep hashing: the planned policy",
        "nothing is paced to a share of a path: each QP offers its NIC's rate; the window, the"
        " 30 ms round trip, ECN/DCQCN and go-back-N decide what each path carries",
    ]
    report = sc.report(
        NAME,
        TITLE,
        phases,
        ifit,
        figures,
        scaling,
        model,
        utilisation=util,
        paths_used=used,
        goodput_mbit=goodput,
        delivered_share=share,
        retransmits=resent,
    )
    return finish(NAME, report, run_dir, _plot)


def _threshold(topo: Topology) -> int:
    ele = topo.features.get("elephant") or {}
    return int(ele.get("threshold_bytes", 0))  # type: ignore[attr-defined]


def _plot(report: Mapping[str, Any], run_dir: Path) -> list[Path]:
    plt = plt_module()
    util = report["utilisation"]
    names = list(util)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, [100 * (util[n] or 0) for n in names], color=["#999", "#c84", "#48c"])
    ax.axhline(20, color="grey", linestyle=":", label="paper: one path (20%)")
    ax.axhline(90, color="black", linestyle="--", label="paper: multi-path (over 90%)")
    ax.set_ylabel("backbone port utilisation %")
    ax.set_ylim(0, 110)
    ax.set_title("ingest: emulated vs paper")
    ax.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    out = run_dir / "ingest-utilisation.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]
