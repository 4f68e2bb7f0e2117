"""reroute: a path degrades mid-transfer, IFIT sees it, the scheduler moves the flow.

An application's flow (with a latency and loss SLA) runs from an edge site to a data centre;
the headend has two SRv6 paths, via `pa` and via `pb`. The compute-aware scheduler
(`pyctl.sched.Scheduler`) places the flow on the better path, and the controller steers it
there: the headend's configuration gets a policy of the flow's own, pinned to that SID list,
ahead of the planned ones, and the flow's IFIT FlowMonID names the path (100 + SID-list
index), then it is re-pushed. An IFIT collector runs in this process, in the collector node's
namespace, with a `CollectorFeed` that hands the scheduler each colour period's figures.

Part-way through, the link from the headend to `pa` degrades: `Emulation.set_link` gives it
`DEGRADED_DELAY_MS` of one-way delay (traffic rerouted at the optical layer onto a long
detour), which the link element applies to every frame after the command, whatever data plane
forwards them. IFIT traces the flow's one-way delay; at the end of a colour period the
scheduler sees the path's delay above the SLA, moves the flow to `pb`, and the report shows the
IFIT path before and after, with the time from the degradation to the decision and to the
first packet traced on the new path (within two colour periods). Where the switch runner offers
`ifit_counters()` (eBPF), the control plane also exports counter records each period, so a
path's loss is seen too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from pyctl import constants as C
from pyctl.controller.steer import PlanSteerer
from pyctl.experiments.figures import Figure, Scaled
from pyctl.experiments.options import Options, resolve_scale, run_dir_for
from pyctl.experiments.plots import plt_module
from pyctl.experiments.report import Outcome, finish
from pyctl.experiments.session import Action, ExperimentScenario
from pyctl.experiments.topologies import path_delay_ms, topology
from pyctl.net.closedloop import counter_sources
from pyctl.sched import SLA, CollectorFeed, DecisionLog, Job, Path, Scheduler, Site
from pyctl.sched.model import KIND_RESTEER
from pyctl.telemetry import (
    ClockConfig,
    Collector,
    CollectorConfig,
    CollectorServer,
    JsonLinesSink,
)
from pyctl.telemetry.counters import CounterExporter

NAME = "reroute"
TITLE = "a path degrades mid-transfer: IFIT sees it, the scheduler moves the flow"
PERIOD_US = 1_000_000  # colour period: IFIT's usual 1 s
# One way: far above what the emulated path adds on a loaded 2-core VM (1 ms of propagation plus
# 3-6 ms in reference switches and link elements), so that only the degradation passes it.
SLA_LATENCY_US = 20_000
SLA_LOSS_PPM = 20_000
# The degraded link's one-way delay (a congested or satellite backup detour). A colour period's
# mean delay passes the SLA once more than (SLA - nominal) / (degraded - nominal) of its reports
# are degraded: (20 - 7) / (87 - 7) ~ 16% with a nominal 7 ms. A degradation in the first 84%
# of a period so trips at that period's end, a later one at the next: the decision comes within
# 1.16 periods, the move one re-push later.
DEGRADED_DELAY_MS = 80.0
DEGRADE_AT = 0.4  # share of the phase before the degradation
PATH_FLOWMON = 100  # the flow's IFIT FlowMonID on SID list i is 100 + i
HEAD, EGRESS, VIA = "pe1", "pe2", ("pa", "pb")

TOPOLOGY: dict[str, Any] = {
    "name": "reroute",
    "description": "An edge site and a DC joined by two SRv6 paths; one of them degrades.",
    "sites": [{"name": "edge"}, {"name": "dc", "gpus": 64}],
    "nodes": [
        {"name": "app", "kind": "host", "site": "edge"},
        {"name": HEAD, "kind": "auto", "role": "headend", "site": "edge"},
        {"name": VIA[0], "kind": "auto", "role": "transit"},
        {"name": VIA[1], "kind": "auto", "role": "transit"},
        {"name": EGRESS, "kind": "auto", "role": "egress", "site": "dc"},
        {"name": "server", "kind": "host", "site": "dc"},
        {"name": "collector", "kind": "collector"},
    ],
    "links": [
        {"a": "app", "b": HEAD, "bw_mbit": 400},
        {"a": HEAD, "b": VIA[0], "bw_mbit": 100, "delay_ms": 1},
        {"a": HEAD, "b": VIA[1], "bw_mbit": 100, "delay_ms": 2},
        {"a": VIA[0], "b": EGRESS, "bw_mbit": 100},
        {"a": VIA[1], "b": EGRESS, "bw_mbit": 100},
        {"a": EGRESS, "b": "server", "bw_mbit": 400},
        {"a": EGRESS, "b": "collector"},
    ],
    "policies": [
        {"name": "edge-to-dc", "headend": HEAD, "egress": EGRESS, "paths": [["pa"], ["pb"]]}
    ],
    "flows": [
        {
            "name": "inference",
            "src": "app",
            "dst": "server",
            "dport": 4791,
            "qp": 0x601,
            "apn": {"app": 6, "user": 1},
            "rate_mbit": 40,
            "sla": {"latency_us": SLA_LATENCY_US, "loss_ppm": SLA_LOSS_PPM},
        }
    ],
    "ifit": {"period_us": PERIOD_US},
}


@dataclass(frozen=True)
class Traced:
    """One IFIT trace report as the collector received it."""

    time: float  # collector's wall clock
    flowmon_id: int
    path: tuple[int, ...]
    one_way_us: float | None


class TimelineSink:
    """Collector events: each trace report kept as a `Traced`; the others go to `inner`."""

    def __init__(self, inner: JsonLinesSink) -> None:
        self.inner = inner
        self.reports: list[Traced] = []

    def emit(self, event: Mapping[str, Any]) -> None:
        if event.get("type") == "report":
            hops = event.get("hops") or []
            head_ts, tail_ts = (hops[0].get("ts_us") if hops else None), event.get("ts_us")
            delay = None if head_ts is None or tail_ts is None else float(tail_ts - head_ts)
            path = tuple(int(h["node"]) for h in hops if h.get("node") is not None)
            self.reports.append(Traced(float(event["time"]), int(event["flowmon_id"]), path, delay))
        elif event.get("type") != "counter":
            self.inner.emit(event)

    def flush(self) -> None:
        self.inner.flush()


def _segments(
    reports: Sequence[Traced], names: Mapping[int, str], t0: float
) -> list[dict[str, Any]]:
    """Runs of consecutive reports over one path: the IFIT path history, with times."""
    out: list[dict[str, Any]] = []
    for r in reports:
        path = " -> ".join(names.get(n, str(n)) for n in r.path)
        if out and out[-1]["path"] == path:
            out[-1]["until_s"] = round(r.time - t0, 3)
            out[-1]["reports"] += 1
        else:
            out.append({"path": path, "from_s": round(r.time - t0, 3),
                        "until_s": round(r.time - t0, 3), "reports": 1})  # fmt: skip
    return out


def _story(
    placed: Mapping[str, Any],
    deg: Mapping[str, Any],
    resteer: Mapping[str, Any] | None,
    reports: Sequence[Traced],
    old: tuple[int, ...],
    new: tuple[int, ...],
    names: Mapping[int, str],
    t0: float,
) -> list[str]:
    """The run in a few lines, times in seconds into the phase (collector receive times)."""

    def path(nodes: tuple[int, ...]) -> str:
        return " -> ".join(names.get(n, str(n)) for n in nodes)

    lines = [f"placed {placed['job']} on {placed['path']} ({path(old)})"]
    if "at_s" in deg:
        lines.append(f"{deg['at_s']:6.2f} s  degraded {HEAD}-{VIA[0]}: {deg['how']}")
    if resteer is not None:
        lines.append(f"{resteer['time'] - t0:6.2f} s  scheduler: {resteer['reason']}")
    on_old = [r.time - t0 for r in reports if r.path == old]
    on_new = [r.time - t0 for r in reports if r.path == new]
    lines.append("IFIT path history:")
    if on_old:
        lines.append(f"  {on_old[0]:6.2f} s  {path(old)} ({len(on_old)} reports)")
    if on_new:
        late = [t for t in on_old if t > on_new[0]]
        lines.append(f"  {on_new[0]:6.2f} s  {path(new)} ({len(on_new)} reports)")
        if late:
            lines.append(
                f"  {late[0]:6.2f} - {late[-1]:.2f} s: {len(late)} more reports over {path(old)}"
                " (packets that were queued on the degraded link)"
            )
    return lines


def _why_not(exporter: CounterExporter) -> str:
    """Why no re-steer happened."""
    if not exporter.sources:
        return "no re-steer: the path's traced delay stayed within the SLA"
    return "no re-steer: the path's traced delay and counted loss stayed within the SLA"


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def run(opts: Options) -> Outcome:
    dataplane, factor = resolve_scale(opts.dataplane, opts.scale)
    base = topology(TOPOLOGY, "reroute")
    topo = base.scaled(factor)
    run_dir = run_dir_for(opts, NAME)
    opts.log(f"icpn experiment {NAME}: {TITLE}")
    sc = ExperimentScenario(topo, run_dir, opts.dataplane, opts.seconds, opts.log, factor)
    sc.observer = opts.observer  # the live view (--web), if any
    (flow,) = topo.flows
    plan = sc.plan
    ids = {name: cfg.node_id for name, cfg in plan.switches.items()}
    names = {v: k for k, v in ids.items()}
    (policy,) = [p for p in plan.switches[HEAD].policies if not p.name.endswith("-reverse")]
    paths = [
        Path(
            name=f"via-{via}",
            headend=HEAD,
            site="dc",
            segments=tuple(str(s) for s in sl.segments),
            nodes=(ids[HEAD], ids[via], ids[EGRESS]),
            flowmon_id=PATH_FLOWMON + i,
            capacity_kbps=int(
                min(lk.bw_mbit or 0 for lk in topo.links if via in (lk.a, lk.b)) * 1000
            ),
            nominal_delay_us=max(1, int(1000 * path_delay_ms(base, [HEAD, via, EGRESS]))),
        )
        for i, (via, sl) in enumerate(zip(VIA, policy.sid_lists, strict=True))
    ]
    job = Job(flow.name, HEAD, SLA(max_latency_us=SLA_LATENCY_US, max_loss_ppm=SLA_LOSS_PPM),
              gpus=0, site="dc")  # fmt: skip
    degrade_at = round(DEGRADE_AT * opts.seconds, 2)
    deg: dict[str, Any] = {}
    steerer = PlanSteerer(sc.plan, sc.topo, sc.apply)

    def degrade() -> None:
        deg["wall"], deg["at_s"] = time.time(), sc.elapsed()
        deg["how"] = sc.set_link(HEAD, VIA[0], delay_ms=DEGRADED_DELAY_MS)
        deg["took_s"] = round(time.time() - deg["wall"], 3)

    with (
        sc.session(collector=False, cli=opts.cli) as emu,
        open(run_dir / "ifit.jsonl", "w") as ifit_file,
        open(run_dir / "decisions.jsonl", "w") as decisions_file,
    ):
        sink = TimelineSink(JsonLinesSink(ifit_file))
        config = CollectorConfig(
            period_s=PERIOD_US / 1e6,
            clock=ClockConfig(synchronised=True),
            report_events=True,
        )
        collector = Collector(config, sink)
        server = emu.run_in(
            "collector",
            lambda: CollectorServer(collector, bind="::", port=C.IFIT_REPORT_PORT, http_port=None),
        )
        sched = Scheduler(
            [Site("dc", 64)], paths, steerer=steerer, decision_log=DecisionLog(decisions_file)
        )
        feed = CollectorFeed(collector, sched)
        path_fids = [p.flowmon_id for p in paths if p.flowmon_id is not None]
        exporter = CounterExporter(
            counter_sources(sc.runners, sc.plan, [*plan.flowmon_ids.values(), *path_fids]),
            collector,
            PERIOD_US,
            on_period=feed.on_period,
        )
        server.start()
        try:
            placed = sched.place(job)
            opts.log(f"  scheduler: {placed.kind} {placed.job} on {placed.path}: {placed.reason}")
            exporter.start()
            phase = sc.phase(
                "reroute",
                [flow],
                actions=[
                    Action(
                        degrade_at,
                        f"degrade {HEAD}-{VIA[0]}: one-way delay {DEGRADED_DELAY_MS:g} ms",
                        degrade,
                    )
                ],
                sample_s=0.1,
            )
        finally:
            exporter.stop()
            server.stop()
        snapshot = collector.snapshot()
    decisions = [d.as_dict() for d in sched.log.tail(100)]
    t_deg = deg.get("wall")
    t0 = (t_deg - deg["at_s"]) if t_deg is not None else time.time() - opts.seconds
    resteer = next(
        (d for d in decisions if d["kind"] == KIND_RESTEER and t_deg and d["time"] >= t_deg), None
    )
    old_nodes, new_nodes = paths[0].nodes, paths[1].nodes
    reports = sorted(sink.reports, key=lambda r: r.time)
    moved = next(
        (r for r in reports if t_deg is not None and r.time >= t_deg and r.path == new_nodes), None
    )
    last_old = max((r.time for r in reports if r.path == old_nodes), default=None)
    period = PERIOD_US / 1e6
    to_decision = resteer["time"] - t_deg if resteer and t_deg else None
    to_move = moved.time - t_deg if moved and t_deg else None
    before = _mean(
        [r.one_way_us for r in reports if r.path == old_nodes and t_deg and r.time < t_deg]
    )
    during = [r.one_way_us for r in reports if r.path == old_nodes and t_deg and r.time >= t_deg]
    after = _mean(
        [
            r.one_way_us
            for r in reports
            if moved and r.path == new_nodes and r.time > moved.time + 0.2
        ]
    )

    def ms(us: float | None) -> str:
        return "-" if us is None else f"{us / 1000:.1f} ms"

    def periods(s: float | None) -> str:
        return "- (not moved)" if s is None else f"{s:.2f} s = {s / period:.2f} colour periods"

    push = next((p for p in steerer.pushes if t_deg and p["time"] >= t_deg), None)
    settle = moved.time - resteer["time"] if moved and resteer else None
    worst = max((d for d in during if d is not None), default=None)
    delays = f"{ms(before)} / {ms(_mean(during))} (max {ms(worst)}) / {ms(after)}"
    drained = (
        "-"
        if last_old is None or moved is None
        else f"{last_old - moved.time:+.2f} s after the move"
    )
    new_path = " -> ".join(names[n] for n in new_nodes)
    why = resteer["reason"][:90] + "..." if resteer else "no re-steer decision"
    budget = "- (issue: within two colour periods)"
    took = None if push is None else push["took_s"]
    how_push = f"re-push returned after {1000 * took:.0f} ms" if took is not None else ""
    figures = [
        Figure("degradation -> scheduler decision", budget, periods(to_decision),
               None if to_decision is None else to_decision / period, why),
        Figure("degradation -> flow traced on the new path", budget, periods(to_move),
               None if to_move is None else to_move / period, f"first IFIT report over {new_path}"),
        Figure("one-way delay: before / degraded / after", "-", delays, None, "IFIT, per report"),
        Figure("decision -> first packet traced on the new path", "-",
               "-" if settle is None else f"{1000 * settle:.0f} ms", settle,
               f"the {dataplane} headend takes the new configuration; {how_push}"),
        Figure("last report over the old path", "-", drained, None,
               "packets already queued on the degraded link"),
    ]  # fmt: skip
    capacity = (paths[0].capacity_kbps or 0) / 1000
    scaling = [
        Scaled("paths and flow", "not stated (no such figure in the paper)",
               f"two paths of {capacity:g} Mbit/s, a {flow.rate_mbit:g} Mbit/s flow",
               f"x{factor:g}: what the {dataplane} data plane forwards here"),
        Scaled("degradation", "a path degrades (delay or loss)",
               f"{HEAD}-{VIA[0]}'s one-way delay set to {DEGRADED_DELAY_MS:g} ms at run time",
               "Emulation.set_link: the link element delays every frame after the change,"
               " whatever forwards it (a detour of about 6,000 km)"),
        Scaled("colour period", "typically 1 s or more", f"{period:g} s",
               "short, so that the two-period budget is one second"),
        Scaled("SLA", "the application's", f"one-way delay <= {SLA_LATENCY_US / 1000:g} ms, loss <="
               f" {SLA_LOSS_PPM / 1e4:g}%", "well above the emulated nodes' own delay"),
    ]  # fmt: skip
    model = [
        "the IFIT collector runs in this process (in the collector node's namespace); at the end"
        " of each colour period a CollectorFeed hands the scheduler each path's figures (the"
        " one-way delay and loss of its FlowMonID in the period just closed)",
        "the scheduler re-steers when the measured delay or loss passes the SLA; the controller"
        " pins the flow to the new SID list (a policy of its own) and re-pushes the headend",
        "times are the collector's receive times (wall clock) against the moment the link"
        " change was issued",
    ]
    report = sc.report(
        NAME,
        TITLE,
        [phase],
        snapshot,
        figures,
        scaling,
        model,
        period_s=period,
        degradation=dict(deg),
        placement=placed.as_dict(),
        decisions=decisions,
        pushes=steerer.pushes,
        to_decision_s=to_decision,
        to_move_s=to_move,
        moved=moved is not None,
        path_history=_segments(reports, names, t0),
        timeline=[
            (
                round(r.time - t0, 4),
                names.get(r.path[1], "?") if len(r.path) > 1 else "?",
                r.one_way_us,
            )
            for r in reports
        ],  # fmt: skip
        counter_records=exporter.exported,
        story=_story(placed.as_dict(), deg, resteer, reports, old_nodes, new_nodes, names, t0)
        + ([] if resteer is not None else [_why_not(exporter)]),
    )
    return finish(NAME, report, run_dir, _plot)


def _plot(report: Mapping[str, Any], run_dir: FsPath) -> list[FsPath]:
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for via, colour in zip(VIA, ("#c44", "#48c"), strict=True):
        pts = [(t, d / 1000) for t, v, d in report["timeline"] if v == via and d is not None]
        ax.scatter([t for t, _ in pts], [d for _, d in pts], s=4, color=colour, label=f"via {via}")
    deg = report["degradation"].get("at_s")
    marks = [(deg, "degradation", "black")]
    t0 = (report["degradation"].get("wall") or 0) - (deg or 0)
    for d in report["decisions"]:
        if d["kind"] == KIND_RESTEER:
            marks.append((d["time"] - t0, "decision", "green"))
    for x, label, colour in marks:
        if x is not None:
            ax.axvline(x, color=colour, linestyle="--", label=label)
    ax.axhline(SLA_LATENCY_US / 1000, color="grey", linestyle=":", label="SLA")
    ax.set_yscale("log")
    ax.set_xlabel("s")
    ax.set_ylabel("IFIT one-way delay, ms")
    ax.set_title(f"reroute: colour period {report['period_s']:g} s")
    ax.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    out = run_dir / "reroute-timeline.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]
