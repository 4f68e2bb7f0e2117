"""The closed loop of `icpn run`: sense (IFIT), decide (the scheduler), steer (the controller).

For a topology whose IFIT flows have SLAs, the run's IFIT collector runs in this process, in
the collector node's namespace (UDP reports and the HTTP /flows document as the stand-alone
collector serves them), so that the scheduler reads its figures as each colour period closes:

* every switch whose runner offers `ifit_counters()` (eBPF: its maps; the reference software
  switch: its process, over a control socket; BMv2: its counters, over P4Runtime) exports its
  per-colour-period counters to the collector (`pyctl.telemetry.counters.CounterExporter`):
  the collector gives each path's and each hop's loss;
* each SID list of each policy is a scheduler path to the egress's site, measured by a
  FlowMonID of its own (`PATH_FLOWMON + i`): the flows steered onto it carry that FlowMonID, so
  its counters give the path's loss. Each SLA flow is a job pinned to its destination's site;
  the scheduler places it on the best path at the start and re-steers it when the path's delay
  or loss passes the SLA at the end of a period;
* the controller (`pyctl.controller.steer.PlanSteerer`) pins the flow to the chosen SID list
  and re-pushes its headend. Each decision, with its reason, is kept in `decisions` (dicts, in
  order) and written to decisions.jsonl.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import IO, Any

from pyctl import constants as C
from pyctl.controller.plan import Plan
from pyctl.controller.steer import PlanSteerer
from pyctl.model.node import NodeConfig
from pyctl.model.topology import FlowIntent, Topology
from pyctl.net.controlapi import controller_routes
from pyctl.sched import SLA, CollectorFeed, DecisionLog, Job, Path, Scheduler, Site
from pyctl.sched.api import routes
from pyctl.sched.model import Decision
from pyctl.targets.runner import SwitchRunner
from pyctl.telemetry.collector import build_parser, config_from_args
from pyctl.telemetry.counters import CounterExporter, Source
from pyctl.telemetry.export import JsonLinesSink
from pyctl.telemetry.httpd import LocalHTTPServer
from pyctl.telemetry.server import CollectorServer
from pyctl.telemetry.state import Collector

PATH_FLOWMON = 100  # path i (policies and SID lists in file order) is FlowMonID 100 + i


def counter_sources(
    runners: Mapping[str, SwitchRunner], plan: Plan, flowmon_ids: Iterable[int]
) -> dict[str, Source]:
    """The switches whose runner reads IFIT counters (eBPF, reference, BMv2), as exporter
    sources of these FlowMonIDs' counters (reading only them: a node keeps 1024 slots, and
    reading them all each period took ~6 ms of CPU a node, which cost `icpn run` ingest's
    multi-path phase 10 points of utilisation on a 2-core VM)."""
    fids = tuple(sorted(set(flowmon_ids)))
    out: dict[str, Source] = {}
    for name, runner in runners.items():
        read = getattr(runner, "ifit_counters", None)
        if callable(read):
            out[name] = (plan.switches[name].node_id, functools.partial(read, fids))
    return out


def sla_flows(topo: Topology) -> list[FlowIntent]:
    """The IFIT flows with a latency or loss SLA: the ones the loop steers."""
    return [f for f in topo.flows if f.ifit and (f.sla.latency_us or f.sla.loss_ppm) is not None]


def _site(topo: Topology, node: str) -> str:
    return next((n.site for n in topo.nodes if n.name == node and n.site), None) or node


def loop_paths(topo: Topology, plan: Plan) -> list[Path]:
    """Each SID list of each policy, as a scheduler path to the egress's site, measured by a
    FlowMonID of its own (`PATH_FLOWMON` + its index): whatever flows it carries."""
    links = {frozenset((lk.a, lk.b)): lk for lk in topo.links}
    out: list[Path] = []
    for intent in topo.policies:
        head, egress = intent.headend, intent.egress
        policy = next(p for p in plan.switches[head].policies if p.name == intent.name)
        for via, sl in zip(intent.paths, policy.sid_lists, strict=True):
            hops = (head, *via, egress)
            lks = [links.get(frozenset(ab)) for ab in zip(hops, hops[1:], strict=False)]
            bws = [lk.bw_mbit for lk in lks if lk is not None and lk.bw_mbit]
            delay_ms = sum(lk.delay_ms for lk in lks if lk is not None)
            out.append(
                Path(
                    name=f"{intent.name}/{'-'.join(via) or 'direct'}",
                    headend=head,
                    site=_site(topo, egress),
                    segments=tuple(str(s) for s in sl.segments),
                    nodes=tuple(plan.switches[n].node_id for n in hops),
                    flowmon_id=PATH_FLOWMON + len(out),
                    capacity_kbps=int(min(bws) * 1000) if bws else None,
                    nominal_delay_us=max(1, int(delay_ms * 1000)),
                )
            )
    return out


def flow_job(topo: Topology, plan: Plan, flow: FlowIntent) -> Job:
    """The flow as a scheduler job: no GPUs, pinned to its destination's site."""
    sla = SLA(max_latency_us=flow.sla.latency_us, max_loss_ppm=flow.sla.loss_ppm)
    head, egress = plan.hosts[flow.src].switch, plan.hosts[flow.dst].switch
    return Job(flow.name, head, sla, gpus=0, site=_site(topo, egress))


class _ListLog(DecisionLog):
    """A decision log that also keeps each decision as a dict in `out` (the run's list)."""

    def __init__(self, out: list[dict[str, Any]], stream: IO[str]) -> None:
        super().__init__(stream)
        self.out = out

    def record(self, decision: Decision) -> None:
        super().record(decision)
        self.out.append(decision.as_dict())


@dataclass
class PathLoss:
    """A FlowMonID's loss over its usable colour periods, per path and per hop."""

    periods: int = 0
    packets: int = 0  # counted by the head
    lost: int = 0
    discarded: int = 0  # periods with a node missing or a negative difference
    hops: dict[tuple[int, int], int] = field(default_factory=dict)


class LossSink:
    """Collector events to `inner`; the per-period loss events also summed per path and hop.

    A period counts when every node of the path reported and no hop lost a negative number of
    packets: a node re-loaded mid-period (the controller re-pushing a headend) loses what it
    had counted, which would read as negative loss on its hop and hide real loss elsewhere."""

    def __init__(self, inner: JsonLinesSink) -> None:
        self.inner = inner
        self.paths: dict[int, PathLoss] = {}

    def emit(self, event: Mapping[str, Any]) -> None:
        if event.get("type") == "loss":
            acc = self.paths.setdefault(int(event["flowmon_id"]), PathLoss())
            segs = event.get("segments", [])
            lost = event.get("packets_lost")
            if (
                not event.get("complete")
                or lost is None
                or lost < 0
                or any(s["packets_lost"] < 0 for s in segs)
            ):
                acc.discarded += 1
            else:
                head = event["counts"][0]["packets"]
                acc.periods += 1
                acc.packets += head
                acc.lost += lost
                for seg in segs:
                    key = (int(seg["from"]), int(seg["to"]))
                    acc.hops[key] = acc.hops.get(key, 0) + int(seg["packets_lost"])
        self.inner.emit(event)

    def flush(self) -> None:
        self.inner.flush()


class ClosedLoop:
    """Collector + counter export + scheduler + steerer for one `icpn run`."""

    def __init__(
        self,
        topo: Topology,
        plan: Plan,
        run_dir: FsPath,
        apply: Callable[[str, NodeConfig], None],
        decisions: list[dict[str, Any]],
        log: Callable[[str], None] = print,
        api_port: int | None = None,
    ) -> None:
        self.topo, self.plan, self.run_dir, self.log = topo, plan, run_dir, log
        self.flows = sla_flows(topo)
        self.api_port = api_port
        self.paths = loop_paths(topo, plan)
        self.period_us = next(
            (c.ifit.period_us for c in plan.switches.values() if c.ifit.flows),
            C.IFIT_PERIOD_US_DEFAULT,
        )
        self.steerer = PlanSteerer(plan, topo, apply)
        self.decisions = decisions
        self.collector: Collector | None = None
        self.sink: LossSink | None = None
        self.exporter: CounterExporter | None = None
        self._server: CollectorServer | None = None
        self.api: LocalHTTPServer | None = None
        self._files: list[IO[str]] = []

    @property
    def active(self) -> bool:
        """Paths to steer over, and SLA flows to steer (or the API to place flows with)."""
        return bool(self.paths) and (bool(self.flows) or self.api_port is not None)

    def flowmon_names(self) -> dict[int, str]:
        return {p.flowmon_id: p.name for p in self.paths if p.flowmon_id is not None}

    def start(
        self,
        serve: Callable[[Callable[[], CollectorServer]], CollectorServer],
        collector_argv: list[str],
        runners: Mapping[str, SwitchRunner],
        http_port: int,
    ) -> None:
        """Start the collector (`serve` builds the server in the collector's namespace, from
        the stand-alone collector's options), the counter export, and place the flows."""
        period_s = self.period_us / 1e6
        config = config_from_args(
            build_parser().parse_args([*collector_argv, "--period", str(period_s)])
        )
        ifit = open(self.run_dir / "ifit.jsonl", "a", encoding="utf-8")  # closed in stop()
        decisions = open(self.run_dir / "decisions.jsonl", "w", encoding="utf-8")
        self._files = [ifit, decisions]
        self.sink = LossSink(JsonLinesSink(ifit))
        collector = self.collector = Collector(config, self.sink)
        self._server = serve(
            lambda: CollectorServer(
                collector, bind="::", port=C.IFIT_REPORT_PORT, http_port=http_port
            )
        )
        self._server.start()
        sites = [Site(s.name, s.gpus) for s in self.topo.sites]
        known = {s.name for s in sites}
        sites += [Site(p.site, 0) for p in self.paths if p.site not in known]
        sites = list({s.name: s for s in sites}.values())
        sched = Scheduler(
            sites,
            self.paths,
            steerer=self.steerer,
            decision_log=_ListLog(self.decisions, decisions),
        )
        feed = CollectorFeed(collector, sched)
        fids = [p.flowmon_id for p in self.paths if p.flowmon_id is not None]
        self.exporter = CounterExporter(
            counter_sources(runners, self.plan, [*self.plan.flowmon_ids.values(), *fids]),
            collector, self.period_us,
            on_period=feed.on_period,
        )  # fmt: skip
        for f in self.flows:
            d = sched.place(flow_job(self.topo, self.plan, f))
            self.log(f"  scheduler: {d.kind} {d.job} on {d.path}: {d.reason}")
        self.exporter.start()
        if self.api_port is not None:
            # the run's scheduler, and the network's side for a stand-alone one (controlapi)
            api = routes(sched) | controller_routes(self.steerer, sites, self.paths)
            self.api = LocalHTTPServer(api, "127.0.0.1", self.api_port).start()
            names = ", ".join(p.name for p in self.paths)
            self.log(
                f"  scheduler API at {self.api.url} (POST /place, /release; GET /network,"
                f" POST /steer for icpn sched serve --network; paths {names})"
            )

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        if self.exporter is not None:
            self.exporter.stop()
        if self._server is not None:
            self._server.stop()
        for f in self._files:
            f.close()

    def loss(self) -> list[dict[str, Any]]:
        """Per path (FlowMonID): loss over the usable colour periods, and per hop."""
        if self.sink is None:
            return []
        names = {cfg.node_id: name for name, cfg in self.plan.switches.items()}
        by_fid = self.flowmon_names() | {v: k for k, v in self.plan.flowmon_ids.items()}
        return [
            {
                "path": by_fid.get(fid, str(fid)),
                "flowmon_id": fid,
                "periods": acc.periods,
                "discarded_periods": acc.discarded,
                "packets": acc.packets,
                "packets_lost": acc.lost,
                "loss_ppm": round(acc.lost * 1e6 / acc.packets, 1) if acc.packets else None,
                "hops": [
                    {"from": names.get(a, str(a)), "to": names.get(b, str(b)), "packets_lost": n}
                    for (a, b), n in acc.hops.items()
                ],
            }
            for fid, acc in sorted(self.sink.paths.items())
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "flows": [f.name for f in self.flows],
            "paths": {p.name: p.flowmon_id for p in self.paths},
            "period_s": self.period_us / 1e6,
            "counter_records": self.exporter.exported if self.exporter else 0,
            "counter_sources": sorted(self.exporter.sources) if self.exporter else [],
            "pushes": list(self.steerer.pushes),
        }
