"""`icpn run TOPOLOGY`: bring the network up, run its flows, and report what the network did.

For a topology with SRv6 policies the flows run twice, side by side in one run: once with every
policy held to its first SID list (single-path transfer) and once with all its SID lists and
APN-keyed deep hashing (multi-path transfer). The report gives per-path throughput and
utilisation of both phases, each flow's goodput, ECN marks and CNPs, and from the IFIT collector
the traced path and per-hop delay of every flow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl.controller.plan import Plan, make_plan
from pyctl.errors import ConfigError, ICPNError
from pyctl.model.node import NodeConfig
from pyctl.model.topology import FlowIntent, Kind, Topology, load_topology
from pyctl.net.closedloop import ClosedLoop
from pyctl.net.cluster import Cluster, ClusterSpec, cluster_spec
from pyctl.net.emulation import Emulation, port_rates
from pyctl.net.flowstats import FlowResult, flow_results
from pyctl.net.framesize import backbone_frame_bytes
from pyctl.net.linkreport import link_rows
from pyctl.net.observer import RunObserver
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner, port_buffers
from pyctl.net.traffic import PACED_PAYLOAD
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.runner import SwitchRunner

COLLECTOR_HTTP_PORT = 9391
# `icpn run`'s default scale on eBPF and BMv2 nodes: the 2-core VM moves about 8,000 4 KB frames
# a second through the Python hosts, the link element and the nodes, so ingest.yaml's four
# 100 Mbit/s RC QPs (12,000 frames/s) would measure the CPUs; at 0.5 they measure the network.
EBPF_SCALE = 0.5
SAMPLE_S = 0.25


@dataclass
class PathUse:
    """One SRv6 path of a policy, as the headend port that leads to its first hop."""

    policy: str
    headend: str
    port: int
    first_hop: str
    bw_mbit: float | None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (t, Mbit/s)
    mbit: float = 0.0

    @property
    def utilisation(self) -> float | None:
        return self.mbit / self.bw_mbit if self.bw_mbit else None


@dataclass
class Phase:
    name: str
    seconds: float
    paths: list[PathUse] = field(default_factory=list)
    flows: list[FlowResult] = field(default_factory=list)
    # eBPF switch nodes: what each did during the phase (forwarded, tail-dropped, CE-marked)
    switches: dict[str, dict[str, int]] = field(default_factory=dict)

    def mean_utilisation(self) -> float | None:
        used = [p.utilisation for p in self.paths if p.utilisation is not None]
        return sum(used) / len(used) if used else None


RC_PAYLOAD = 4096  # an RC flow sends RoCEv2's usual 4 KB MTU (a paced one, PACED_PAYLOAD)


def payload_of(f: FlowIntent) -> int:
    """UDP payload octets of the flow's packets as `icpn run` sends them."""
    return RC_PAYLOAD if f.window_kb else PACED_PAYLOAD


def window_args(f: FlowIntent) -> list[str]:
    """The sender's RC window (`window_kb`) and message size, when the flow has one."""
    if not f.window_kb:
        return []
    return ["--window-bytes", str(round(f.window_kb * 1000)), "--size", str(RC_PAYLOAD)]


def single_path(cfg: NodeConfig) -> NodeConfig:
    """The node with every policy held to its first SID list (the single-path phase)."""
    pols = tuple(dataclasses.replace(p, buckets=tuple(0 for _ in p.buckets)) for p in cfg.policies)
    return dataclasses.replace(cfg, policies=pols)


RUNNERS = ("auto", "ebpf", "reference", "bmv2")


def bmv2_switches(topo: Topology, dataplane: str) -> list[str]:
    """The switches that run BMv2 (whose clocks the collector must estimate): those whose
    topology kind is bmv2, and every unpinned one when the run's data plane is bmv2."""
    return [
        n.name
        for n in topo.routers
        if (n.kind.value if n.kind is not Kind.AUTO else dataplane) == "bmv2"
    ]


def bmv2_flowmon_problem(flowmon_ids: dict[str, int], bmv2_nodes: list[str]) -> str | None:
    """Why the run's IFIT flows cannot cross its BMv2 switches, or None: the P4 program keeps
    one FlowMonID per counter slot (docs/p4.md limits) and would drop a second one's packets."""
    if not bmv2_nodes:
        return None
    from pyctl.targets.bmv2.writer import shared_counter_slots

    shared = shared_counter_slots(sorted(flowmon_ids.values()))
    if not shared:
        return None
    return f"BMv2 switches {', '.join(bmv2_nodes)}: {shared[0]}; use fewer IFIT flows"


def choose_runner(requested: str) -> tuple[str, Callable[[str], SwitchRunner], str]:
    """(name, runner factory, why) for the switch nodes: `ebpf` (the XDP node program),
    `reference` (the Python contract on AF_PACKET sockets), `bmv2` (simple_switch_grpc with the
    P4 program), or `auto`: eBPF when it can run on this machine, else the reference software
    switch. `auto` prefers eBPF to BMv2 even where BMv2 is installed: BMv2 forwards ~15,000
    packets/s here and has no line-rate model, so the pilots' rates would measure BMv2. A
    topology node whose kind is `bmv2` or `ebpf` runs that plane whatever is chosen here
    (`node_runner`), which makes mixed networks."""
    if requested not in RUNNERS:
        raise ICPNError(f"--dataplane {requested!r}: the switch nodes run {', '.join(RUNNERS)}")
    if requested == "bmv2":
        from pyctl.net.bmv2_runner import BMv2SwitchRunner
        from pyctl.targets.bmv2 import BMv2DataPlane

        bmv2_reason = BMv2DataPlane.unavailable()
        if bmv2_reason is not None:
            raise ICPNError(f"--dataplane bmv2: BMv2 cannot run here: {bmv2_reason}")
        why = "BMv2 simple_switch_grpc switch nodes running p4/build/icpn.json over P4Runtime"
        return "bmv2", lambda name: BMv2SwitchRunner(name), why
    reason = EBPFDataPlane.unavailable() if requested != "reference" else None
    if requested == "ebpf" and reason is not None:
        raise ICPNError(f"--dataplane ebpf: the eBPF data plane cannot run here: {reason}")
    if requested != "reference" and reason is None:
        why = (
            "eBPF switch nodes (icpn_node as XDP on every port; links policed at line rate by"
            " per-port virtual queues)"
        )
        if requested == "auto":
            why += ", chosen because the eBPF data plane can run here"
        return "ebpf", lambda name: EBPFSwitchRunner(name), why
    why = "reference software switches (the contract itself, in Python, on AF_PACKET sockets)"
    if requested == "auto":
        why += f", chosen because the eBPF data plane cannot run here: {reason}"
    return "reference", lambda name: SoftwareSwitchRunner(name, "reference"), why


def node_runner(
    topo: Topology, name: str, default: Callable[[str], SwitchRunner]
) -> Callable[[str], SwitchRunner]:
    """The runner factory for one switch: its topology kind when that names a plane (`bmv2`,
    `ebpf`), else the run's choice. A network may so mix BMv2 and eBPF nodes."""
    kind = topo.node(name).kind
    if kind is Kind.BMV2:
        return choose_runner("bmv2")[1]
    if kind is Kind.EBPF:
        return choose_runner("ebpf")[1]
    return default


def _with_rates(
    factory: Callable[[str], SwitchRunner], topo: Topology, plan: Plan
) -> Callable[[str], SwitchRunner]:
    def make(name: str) -> SwitchRunner:
        runner = factory(name)
        if isinstance(runner, SoftwareSwitchRunner):
            runner.rates = port_rates(topo, plan, name)
        elif isinstance(runner, EBPFSwitchRunner):
            runner.rates = port_rates(topo, plan, name)
            runner.buffers = port_buffers(topo, plan, name)
        return runner

    return make


class Scenario:
    def __init__(
        self,
        topo: Topology,
        run_dir: Path,
        dataplane: str = "auto",
        seconds: float = 5.0,
        log: Callable[[str], None] = print,
        scale: float = 1.0,
    ) -> None:
        self.scale = scale
        self.topo = topo
        self.plan: Plan = make_plan(topo)
        self.run_dir = run_dir
        self.seconds = seconds
        self.log = log
        self.dataplane, self.factory, self.why = choose_runner(dataplane)
        self.emu: Emulation | None = None
        self.link_element = "icpn"  # or "netem" (Emulation's link_element)
        self.cluster: ClusterSpec | None = None  # several servers (docs/cluster.md)
        self.runners: dict[str, SwitchRunner] = {}
        self.bmv2_nodes: list[str] = []
        # The closed loop (pyctl.net.closedloop), for topologies with SLA flows: the
        # scheduler's decisions as dicts, in order, appended while the run goes on.
        self.decisions: list[dict[str, Any]] = []
        self.loop: ClosedLoop | None = None
        self.sched_port: int | None = None  # serve the loop's scheduler API (icpn run --sched)
        self._transform: Callable[[NodeConfig], NodeConfig] | None = None
        self.observer: RunObserver | None = None  # the live view (`icpn run --web`)
        self.phases: list[Phase] = []  # the phases done so far (the live view reads them)

    def _runner(self, name: str) -> SwitchRunner:
        runner = _with_rates(node_runner(self.topo, name, self.factory), self.topo, self.plan)(name)
        self.runners[name] = runner
        return runner

    def paths(self) -> list[PathUse]:
        """Each policy's SID lists as the headend port towards their first segment's node."""
        out: list[PathUse] = []
        locators = {
            s: ipaddress.IPv6Network(f"{self.plan.end_sid(s)}/48") for s in self.plan.switches
        }
        for head, cfg in self.plan.switches.items():
            for pol in cfg.policies:
                if pol.name.endswith("-reverse"):
                    continue
                for sl in pol.sid_lists:
                    first = next(
                        (s for s, net in locators.items() if sl.segments[0] in net), "egress"
                    )
                    port = next(
                        (
                            p
                            for (n, p), (peer, _) in self.plan.wiring.items()
                            if n == head and peer == first
                        ),
                        None,
                    )
                    if port is None:
                        continue
                    link = next(
                        (lk for lk in self.topo.links if {lk.a, lk.b} == {head, first}), None
                    )
                    out.append(PathUse(pol.name, head, port, first, link.bw_mbit if link else None))
        return out

    def run(self, cli: bool = False) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pinned = {n.name: n.kind.value for n in self.topo.routers if n.kind is not Kind.AUTO}
        self.bmv2_nodes = bmv2_switches(self.topo, self.dataplane)
        problem = bmv2_flowmon_problem(self.plan.flowmon_ids, self.bmv2_nodes)
        if problem is not None:
            raise ICPNError(f"icpn run: {self.topo.name}: {problem}")
        extra = ""
        if pinned:
            extra = " (by their topology kind: " + ", ".join(f"{n} {k}" for n, k in pinned.items())
            extra += ")"
        self.log(f"icpn run: {self.topo.name}: data planes: {self.dataplane} — {self.why}{extra}")
        if self.scale != 1:
            self.log(
                f"  scaled by {self.scale:g} to what this data plane carries: link bandwidths,"
                " flow rates, RC windows, SLA bandwidths, elephant threshold"
            )
        t0 = time.monotonic()
        self.emu = Emulation(
            self.topo,
            self.plan,
            self.run_dir,
            self._runner,
            log=self.log,
            link_element=self.link_element,
            cluster=Cluster(self.cluster) if self.cluster is not None else None,
        )
        if self.cluster is not None:
            self.log(f"  servers: {', '.join(s.name for s in self.cluster.servers)}")
        with self.emu:
            self.log(
                f"  network up: {len(self.plan.switches)} switches, {len(self.plan.hosts)} hosts"
                f" in {time.monotonic() - t0:.1f} s (run directory {self.run_dir}); links by"
                f" {self.emu.element_name}"
            )
            collector = self._start_loop() or self._start_collector()
            if self.observer is not None:
                self.observer.network_up(self)
            phases = self.phases
            has_policies = any(c.policies for c in self.plan.switches.values())
            try:
                if has_policies:
                    phases.append(self._phase("single-path", single_path))
                phases.append(self._phase("multi-path" if has_policies else "flows", None))
                ifit = self._collector_snapshot(collector)
            finally:
                if self.loop is not None:
                    self.loop.stop()
            link_stats = self.emu.link_stats()
            if cli:
                from mininet.cli import CLI

                self.log("  Mininet CLI (exit to tear the network down)")
                CLI(self.emu.net)
        report = self._report(phases, ifit)
        report["links"] = link_rows(
            [i.link for i in self.emu.links],
            link_stats,
            report["ifit"],
            self.emu.element_name,
            self.frame_bytes(),
        )
        report["switches"] = self._switch_counters()
        if self.loop is not None:
            report["loss"] = self.loop.loss()
            report["closed_loop"] = self.loop.summary()
        report["decisions"] = list(self.decisions)
        (self.run_dir / "report.json").write_text(json.dumps(report, indent=1))
        return report

    def frame_bytes(self) -> dict[str, int]:
        """Each flow's frame on its backbone links (pyctl.net.framesize), by flow name."""
        out = {}
        for f in self.topo.flows:
            n = backbone_frame_bytes(self.plan, self.topo, f, payload_of(f))
            if n is not None:
                out[f.name] = n
        return out

    def _start_collector(self) -> str | None:
        col = next((n.name for n in self.topo.nodes if n.kind is Kind.COLLECTOR), None)
        if col is None or self.emu is None:
            return None
        argv = [sys.executable, "-m", "pyctl.telemetry.collector", "--bind", "::"]
        # eBPF and software switches stamp one clock (CLOCK_MONOTONIC); BMv2 counts its own
        # microseconds since it started, so with BMv2 nodes the collector estimates offsets
        clock = "--estimate-offsets" if self.bmv2_nodes else "--synchronised"
        argv += ["--http-port", str(COLLECTOR_HTTP_PORT), clock]
        argv += ["--jsonl", str(self.run_dir / "ifit.jsonl")]
        self.emu.popen(col, argv, "collector")
        time.sleep(0.5)
        return col

    def _start_loop(self) -> str | None:
        """The closed loop, for a topology with SLA flows; its collector's node or None."""
        col = next((n.name for n in self.topo.nodes if n.kind is Kind.COLLECTOR), None)
        loop = ClosedLoop(
            self.topo, self.plan, self.run_dir, self._steer, self.decisions, self.log,
            api_port=self.sched_port,
        )  # fmt: skip
        if col is None or self.emu is None or not loop.active:
            return None
        emu = self.emu
        clock = "--estimate-offsets" if self.bmv2_nodes else "--synchronised"
        try:
            loop.start(
                lambda make: emu.run_in(col, make), [clock], self.runners, COLLECTOR_HTTP_PORT
            )
        except BaseException:
            loop.stop()  # what did start: the collector's thread and socket, the files
            raise
        self.loop = loop
        return col

    def _steer(self, switch: str, cfg: NodeConfig) -> None:
        """The controller re-pushes a headend the scheduler steered (as the phase holds it)."""
        self.runners[switch].apply(self._transform(cfg) if self._transform else cfg)

    def _collector_snapshot(self, col: str | None) -> dict[str, Any]:
        if col is None or self.emu is None:
            return {}

        def fetch() -> dict[str, Any]:
            url = f"http://127.0.0.1:{COLLECTOR_HTTP_PORT}/flows"
            with urllib.request.urlopen(url, timeout=5) as resp:
                doc: dict[str, Any] = json.loads(resp.read())
                return doc

        try:
            return self.emu.run_in(col, fetch)
        except OSError as e:
            self.log(f"  warning: IFIT collector did not answer ({e}); no telemetry in the report")
            return {}

    def _phase(self, name: str, transform: Callable[[NodeConfig], NodeConfig] | None) -> Phase:
        assert self.emu is not None
        self._transform = transform
        with self.loop.steerer.lock if self.loop is not None else contextlib.nullcontext():
            for sw, cfg in self.plan.switches.items():
                if self.loop is not None:
                    cfg = self.loop.steerer.config(sw)  # with the flows the scheduler steered
                if cfg.policies:
                    self.runners[sw].apply(transform(cfg) if transform else cfg)
        phase = Phase(name, self.seconds, paths=self.paths())
        before = self._switch_counts()
        self.log(f"  phase {name}: {len(self.topo.flows)} flows for {self.seconds:.0f} s")
        receivers = {}
        for host, dport in sorted({(f.dst, f.dport) for f in self.topo.flows}):
            tag = f"{name}-rx-{host}-{dport}"
            stats = self.run_dir / f"{tag}.json"
            argv = [sys.executable, "-m", "pyctl.net.traffic", "recv", "--stats", str(stats)]
            argv += ["--port", str(dport), "--duration", str(self.seconds + 2)]
            receivers[(host, dport)] = (self.emu.popen(host, argv, tag), stats)
        time.sleep(0.3)
        senders = {}
        for i, f in enumerate(self.topo.flows):
            stats = self.run_dir / f"{name}-tx-{f.name}.json"
            argv = [sys.executable, "-m", "pyctl.net.traffic", "send", "--stats", str(stats)]
            argv += ["--dst", str(self.plan.hosts[f.dst].address), "--dport", str(f.dport)]
            argv += ["--sport", str(f.sport + i), "--qp", hex(f.qp or 0x10 + i)]
            argv += ["--rate-mbit", f"{f.rate_mbit:.3f}", "--duration", str(self.seconds)]
            argv += window_args(f)
            if "pfc" in self.topo.features:  # senders honour PFC pauses (lossless transport)
                link = next(lk for lk in self.topo.links if f.src in (lk.a, lk.b))
                argv += ["--pfc-iface", self.emu.ifnames[(f.src, 1)]]
                argv += ["--line-rate-mbit", str(link.bw_mbit or 1000)]
            senders[f.name] = (self.emu.popen(f.src, argv, f"{name}-tx-{f.name}"), stats)
        start = time.monotonic()
        last = self._carried(phase.paths)
        last_t = start
        shown = 0
        while any(proc.poll() is None for proc, _ in senders.values()):
            time.sleep(SAMPLE_S)
            last, last_t = self._sample(phase.paths, last, last_t, start)
            now = last_t
            if int(now - start) > shown:
                shown = int(now - start)
                self.log(f"    {shown}/{self.seconds:.0f} s")
        for proc, _ in receivers.values():
            proc.wait(self.seconds + 10)
        self.emu.pull()  # the statistics of hosts on other servers (cluster runs)
        self._close(phase, before)
        phase.flows = flow_results(
            self.topo,
            self.plan,
            {name: stats for name, (_, stats) in senders.items()},
            [stats for _, stats in receivers.values()],
        )
        return phase

    def live_flows(self, phase: str) -> list[FlowResult]:
        """The flows of the running phase `phase` so far (their processes rewrite their stats
        files every half second: pyctl.net.traffic)."""
        tx = {f.name: self.run_dir / f"{phase}-tx-{f.name}.json" for f in self.topo.flows}
        return flow_results(self.topo, self.plan, tx, self.run_dir.glob(f"{phase}-rx-*.json"))

    def _switch_counts(self) -> dict[str, dict[str, int]]:
        """Totals of the eBPF switch nodes (the others keep theirs until they stop)."""
        out = {}
        for sw, runner in self.runners.items():
            if isinstance(runner, EBPFSwitchRunner):
                st = runner.stats()
                out[sw] = {
                    "forwarded": st["counts"]["out"],
                    "dropped": st["counts"]["dropped"],
                    "queue_drops": st["drops"].get("queue-full", 0),
                    "ce_marked": st["counts"]["ce_marked"],
                }
        return out

    def _sample(
        self, paths: list[PathUse], last: dict[tuple[str, int], int], since: float, start: float
    ) -> tuple[dict[tuple[str, int], int], float]:
        """One rate sample of each path since the last (`last` bytes at `since`); the new
        totals and their time."""
        now = time.monotonic()
        carried = self._carried(paths)
        for p in paths:
            at = (p.headend, p.port)
            mbit = (carried[at] - last[at]) * 8 / max(now - since, 1e-6) / 1e6
            p.samples.append((round(now - start, 3), mbit))
        return carried, now

    def _close(self, phase: Phase, counts_before: dict[str, dict[str, int]]) -> None:
        """The phase's switch totals, and each path's mean rate over its busy window: bits
        over time across the samples (each weighted by its interval, so a sample taken late
        on a loaded VM does not count more than its share)."""
        for sw, now_counts in self._switch_counts().items():
            was = counts_before.get(sw, {})
            phase.switches[sw] = {k: v - was.get(k, 0) for k, v in now_counts.items()}
        for p in phase.paths:
            busy, before = [], 0.0
            for t, m in p.samples:
                if 0.5 <= t <= phase.seconds - 0.25:
                    busy.append((t - before, m))
                before = t
            total = sum(dt for dt, _ in busy)
            p.mbit = sum(dt * m for dt, m in busy) / total if total > 0 else 0.0

    def _carried(self, paths: list[PathUse]) -> dict[tuple[str, int], int]:
        """Bytes each path's first link has carried from its headend: the link element's
        transmitted frames in that direction (what crossed the link, at most its rate; the
        switch's port counter would also count what still waits in the link's queue)."""
        assert self.emu is not None
        stats = self.emu.link_stats()
        out = {}
        for p in paths:
            info = self.emu.link(p.headend, p.first_hop)
            c = stats[info.name]
            out[(p.headend, p.port)] = (c.a2b if info.link.a == p.headend else c.b2a).tx_bytes
        return out

    def _switch_counters(self) -> dict[str, Any]:
        """What each software switch counted in the last phase (written when it stopped)."""
        out: dict[str, Any] = {}
        for name in self.plan.switches:
            f = self.run_dir / "nodes" / f"{name}.stats.json"
            if f.exists():
                out[name] = json.loads(f.read_text())
        return out

    def _report(self, phases: list[Phase], ifit: dict[str, Any]) -> dict[str, Any]:
        names = {cfg.node_id: name for name, cfg in self.plan.switches.items()}
        flows_by_id = {v: k for k, v in self.plan.flowmon_ids.items()}
        paths = self.loop.flowmon_names() if self.loop is not None else {}
        by_port = {(f.sport + i, f.dport): f.name for i, f in enumerate(self.topo.flows)}
        loss = {row["flowmon_id"]: row for row in (self.loop.loss() if self.loop else [])}
        telemetry = []
        for fl in ifit.get("flows", []):
            fid = fl.get("flowmon_id")
            telemetry.append(
                {
                    "flow": _label(fl, flows_by_id, paths, by_port),
                    "flowmon_id": fid,
                    "path": [names.get(n, str(n)) for n in fl.get("path", [])],
                    "path_changes": fl.get("path_changes", 0),
                    "delay_us": fl.get("delay_us", {}),
                    "loss": loss.get(fid),  # counted loss (the closed loop's export)
                    "hops": [
                        {
                            "from": names.get(h["from"], str(h["from"])),
                            "to": names.get(h["to"], str(h["to"])),
                            "delay_us": h["delay_us"],
                        }
                        for h in fl.get("hops", [])
                    ],
                }
            )
        return {
            "topology": self.topo.name,
            "dataplane": self.dataplane,
            "why": self.why,
            "seconds_per_phase": self.seconds,
            "phases": [dataclasses.asdict(p) for p in phases],
            "mean_utilisation": {p.name: p.mean_utilisation() for p in phases},
            "ifit": telemetry,
            "ifit_counters": ifit.get("counters", {}),
        }


def _label(
    fl: dict[str, Any], flows: dict[int, str], paths: dict[int, str], by_port: dict[Any, str]
) -> str:
    """A collector flow's name: the topology's, or for a path's FlowMonID (the closed loop
    steered it) the flow by its ports, on the path."""
    fid = fl.get("flowmon_id")
    if fid in paths:
        return f"{by_port.get((fl.get('sport'), fl.get('dport')), '?')} on {paths[fid]}"
    return flows.get(fid, str(fid)) if fid is not None else "?"


def check_run_options(seconds: float, scale: float | None) -> None:
    """The bounds of `icpn run`'s and `icpn experiment`'s --seconds and --scale (one line each,
    naming the option and the value; NaN fails both comparisons and is refused too)."""
    if not 1 <= seconds <= 3600:
        raise ConfigError("--seconds", f"{seconds} is out of range [1, 3600]")
    if scale is not None and not 1e-4 <= scale <= 100:
        raise ConfigError("--scale", f"{scale} is out of range [0.0001, 100]")


def run_topology(
    path: Path,
    dataplane: str = "auto",
    seconds: float = 5.0,
    scale: float | None = None,
    out_root: Path = Path("runs"),
    cli: bool | None = None,
    link_element: str = "icpn",
    sched_port: int | None = None,
    observer: RunObserver | None = None,
    servers: str | None = None,
    ssh_config: Path | None = None,
) -> int:
    from pyctl.net.report import render

    check_run_options(seconds, scale)
    if sched_port is not None and not 1 <= sched_port <= 65535:
        raise ConfigError("--sched-port", f"{sched_port} is not a TCP port (1-65535)")
    if os.geteuid() != 0:
        raise ICPNError("icpn run needs root (namespaces, links): run it with sudo")
    topo = load_topology(path)
    spec = cluster_spec(topo, servers, ssh_config)  # the servers, before anything starts
    name, _, _ = choose_runner(dataplane)
    factor = scale if scale is not None else (0.05 if name == "reference" else EBPF_SCALE)
    topo = topo.scaled(factor)
    run_dir = out_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{topo.name}"
    interactive = sys.stdin.isatty() if cli is None else cli
    scenario = Scenario(topo, run_dir, dataplane, seconds, scale=factor)
    scenario.link_element = link_element
    scenario.cluster = spec
    scenario.sched_port = sched_port
    scenario.observer = observer
    try:
        report = scenario.run(cli=interactive)
        print(render(report, run_dir))
        if observer is not None:
            observer.finished(report, run_dir)
    finally:
        if observer is not None:
            observer.close()
    return 0
