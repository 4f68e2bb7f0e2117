"""The network session an experiment drives: `ExperimentScenario` is the `icpn run` machinery
(`pyctl.net.scenario.Scenario`: Mininet emulation, RoCEv2-like traffic, headend port sampling,
IFIT collector) with flows chosen per phase, actions at set times within a phase (re-push a
node, change a sender's rate, degrade a link) and the experiment's report."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl import constants as C
from pyctl.experiments.figures import Figure, Scaled
from pyctl.model.node import NodeConfig
from pyctl.model.topology import FlowIntent, Topology
from pyctl.net.emulation import Emulation
from pyctl.net.flowstats import FlowResult
from pyctl.net.scenario import SAMPLE_S, PathUse, Phase, Scenario, window_args

UDP6_FRAME_OVERHEAD = C.ETH_HLEN + 40 + 8  # Ethernet, IPv6, UDP headers of a decapsulated frame
ROCE_PAYLOAD = 4096  # UDP payload a packet (BTH included): RoCEv2's usual 4 KB MTU


@dataclass(frozen=True)
class Action:
    """Something the controller does `at_s` seconds into a phase."""

    at_s: float
    label: str
    do: Callable[[], None]


@dataclass
class TimedPhase(Phase):
    """A phase with the actions taken during it ((seconds into the phase, label))."""

    events: list[tuple[float, str]] = field(default_factory=list)
    sample_s: float = SAMPLE_S
    # "node:port" -> (t, Mbit/s of UDP payload sent there): frame bytes less Ethernet/IPv6/UDP
    watched: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class _Sender:
    flow: FlowIntent
    index: int
    rate_mbit: float
    deadline: float  # monotonic
    runs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def alive(self) -> bool:
        return any(proc.poll() is None for proc, _ in self.runs)


class ExperimentScenario(Scenario):
    """`Scenario` with a session the experiment drives: phases of chosen flows, timed actions."""

    def __init__(
        self,
        topo: Topology,
        run_dir: Path,
        dataplane: str = "auto",
        seconds: float = 5.0,
        log: Callable[[str], None] = print,
        scale: float = 1.0,
        payload: int = ROCE_PAYLOAD,
    ) -> None:
        super().__init__(topo, run_dir, dataplane, seconds, log, scale)
        self.payload = payload
        self.lock = threading.Lock()  # node shells and switch restarts, one at a time
        self.collector_node: str | None = None
        self.senders: dict[str, _Sender] = {}
        # flow name -> more sender options for the next phases (e.g. --fetch-bytes N --fetches K)
        self.sender_args: dict[str, list[str]] = {}
        self._phase_start = 0.0
        self._phase_name = ""
        self.configs: dict[str, NodeConfig] = dict(self.plan.switches)  # as last pushed

    @contextmanager
    def session(self, collector: bool = True, cli: bool = False) -> Iterator[Emulation]:
        """The network up (and the IFIT collector process, unless told not to) until the end."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"  data planes: {self.dataplane} — {self.why}")
        t0 = time.monotonic()
        self.emu = Emulation(self.topo, self.plan, self.run_dir, self._runner, log=self.log)
        with self.emu:
            self.log(
                f"  network up: {len(self.plan.switches)} switches, {len(self.plan.hosts)} hosts"
                f" in {time.monotonic() - t0:.1f} s (run directory {self.run_dir})"
            )
            try:
                if collector:
                    self.collector_node = self._start_collector()
                if self.observer is not None:
                    self.observer.network_up(self)
                yield self.emu
                if cli:
                    from mininet.cli import CLI

                    self.log("  Mininet CLI (exit to tear the network down)")
                    CLI(self.emu.net)
            finally:
                self._stop_senders()

    def ifit(self) -> dict[str, Any]:
        """The collector process's /flows document (empty without a collector)."""
        return self._collector_snapshot(self.collector_node)

    def apply(self, switch: str, cfg: NodeConfig) -> None:
        """The controller re-pushes a switch's configuration (thread-safe)."""
        with self.lock:
            self.runners[switch].apply(cfg)
            self.configs[switch] = cfg

    def sh(self, node: str, cmd: str) -> str:
        """A shell command in a node (thread-safe with the sampler)."""
        assert self.emu is not None
        with self.lock:
            out: str = self.emu.nodes[node].cmd(cmd)
            return out

    def elapsed(self) -> float:
        """Seconds since the current phase's traffic started."""
        return time.monotonic() - self._phase_start

    def phase(
        self,
        name: str,
        flows: Sequence[FlowIntent] | None = None,
        *,
        configs: Mapping[str, NodeConfig] | None = None,
        seconds: float | None = None,
        actions: Sequence[Action] = (),
        sample_s: float = SAMPLE_S,
        watch: Sequence[tuple[str, int]] = (),
    ) -> TimedPhase:
        """Run `flows` (default: all) for `seconds`, after pushing `configs` to their switches;
        sample every headend path port (and the UDP payload rate sent out of each `watch`
        port); run each action when its time comes."""
        assert self.emu is not None
        secs = self.seconds if seconds is None else seconds
        for sw, cfg in (configs or {}).items():
            self.apply(sw, cfg)
        chosen = list(self.topo.flows if flows is None else flows)
        names = [f.name for f in self.topo.flows]
        phase = TimedPhase(name, secs, paths=self.paths(), sample_s=sample_s)
        counts_before = self._switch_counts()
        self.log(f"  phase {name}: {len(chosen)} flows for {secs:g} s")
        receivers = []
        for host in sorted({f.dst for f in chosen}):
            stats = self.run_dir / f"{name}-rx-{host}.json"
            argv = [sys.executable, "-m", "pyctl.net.traffic", "recv", "--stats", str(stats)]
            argv += ["--duration", str(secs + 2)]
            receivers.append((self.emu.popen(host, argv, f"{name}-rx-{host}"), stats))
        time.sleep(0.3)
        self.senders = {}
        self._phase_name = name
        start = self._phase_start = time.monotonic()
        for f in chosen:
            sender = _Sender(f, names.index(f.name), f.rate_mbit, start + secs)
            self.senders[f.name] = sender
            self._start_sender(sender)
        last = self._carried(phase.paths)
        last_w = {w: self._tx_counts(*w) for w in watch}
        phase.watched = {f"{n}:{p}": [] for n, p in watch}
        last_t = start
        pending = sorted(actions, key=lambda a: a.at_s)
        shown = 0
        while any(s.alive() for s in self.senders.values()):
            time.sleep(max(0.0, sample_s - (time.monotonic() - last_t)))
            since = last_t
            last, now = self._sample(phase.paths, last, last_t, start)
            for w in watch:
                (b, n), (b0, n0) = self._tx_counts(*w), last_w[w]
                payload = (b - b0) - (n - n0) * UDP6_FRAME_OVERHEAD
                mbit = payload * 8 / max(now - since, 1e-6) / 1e6
                phase.watched[f"{w[0]}:{w[1]}"].append((round(now - start, 3), mbit))
                last_w[w] = (b, n)
            last_t = now
            while pending and now - start >= pending[0].at_s:
                action = pending.pop(0)
                action.do()
                phase.events.append((round(time.monotonic() - start, 3), action.label))
                self.log(f"    {time.monotonic() - start:.2f} s: {action.label}")
            if int(now - start) > shown:
                shown = int(now - start)
                self.log(f"    {shown}/{secs:g} s")
        if time.monotonic() - start < secs:  # the senders finished early (messages moved):
            time.sleep(0.3)  # what is still in flight lands, then the receivers write their
            for proc, _ in receivers:  # figures on SIGTERM
                proc.terminate()
        for proc, _ in receivers:
            proc.wait(secs + 10)
        self._close(phase, counts_before)
        rx: dict[str, Any] = {}
        for _, stats in receivers:
            if stats.exists():
                rx.update(json.loads(stats.read_text()))
        for f in chosen:
            phase.flows.append(self._flow_result(self.senders[f.name], rx))
        self.senders = {}
        return phase

    def set_rate(self, flow: str, rate_mbit: float) -> None:
        """Restart `flow`'s sender at `rate_mbit` for the rest of the phase (same QP and ports)."""
        sender = self.senders[flow]
        proc, _ = sender.runs[-1]
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
        sender.rate_mbit = rate_mbit
        if sender.deadline - time.monotonic() > 0.05:
            self._start_sender(sender)

    def _start_sender(self, s: _Sender) -> None:
        assert self.emu is not None
        f, i = s.flow, s.index
        n = len(s.runs)
        tag = f"{self._phase_name}-tx-{f.name}" + (f"-{n}" if n else "")
        stats = self.run_dir / f"{tag}.json"
        remaining = max(0.1, s.deadline - time.monotonic())
        argv = [sys.executable, "-m", "pyctl.net.traffic", "send", "--stats", str(stats)]
        argv += ["--dst", str(self.plan.hosts[f.dst].address), "--dport", str(f.dport)]
        argv += ["--sport", str(f.sport + i), "--qp", hex(f.qp or 0x10 + i)]
        argv += ["--rate-mbit", f"{s.rate_mbit:.3f}", "--duration", f"{remaining:.3f}"]
        # the experiment's payload size wins over the RC default (argparse keeps the last)
        argv += [*window_args(f), "--size", str(self.payload), *self.sender_args.get(f.name, [])]
        s.runs.append((self.emu.popen(f.src, argv, tag), stats))

    def _flow_result(self, s: _Sender, rx: Mapping[str, Any]) -> FlowResult:
        f, i = s.flow, s.index
        res = FlowResult(f.name)
        sent = secs = 0.0
        for _, stats in s.runs:
            if stats.exists():
                tx = json.loads(stats.read_text())
                sent += tx["bytes"]
                secs += tx["seconds"]
                res.cnps += tx["cnps"]
                res.retransmits += tx.get("retransmits", 0)
                res.timeouts += tx.get("timeouts", 0)
                res.fetch_s += tx.get("fetch_s", [])
        res.sent_mbit = sent * 8 / max(secs, 1e-9) / 1e6
        got = rx.get(f"{self.plan.hosts[f.src].address}/{f.qp or 0x10 + i:#x}")
        if got is not None:
            span = max(got["last"] - got["first"], 1e-9)
            res.received_mbit = got["bytes"] * 8 / span / 1e6
            res.ce = got["ce"]
        return res

    def _carried(self, paths: list[PathUse]) -> dict[tuple[str, int], int]:
        with self.lock:  # one element command at a time with the actions' link changes
            return super()._carried(paths)

    def _tx_counts(self, node: str, port: int) -> tuple[int, int]:
        """(bytes, packets) sent out of a node's port, from the node's own netlink."""
        assert self.emu is not None
        out = self.sh(node, f"ip -s -j link show dev {self.emu.ifnames[(node, port)]}")
        try:
            tx = json.loads(out)[0]["stats64"]["tx"]
            return int(tx["bytes"]), int(tx["packets"])
        except (ValueError, KeyError, IndexError):
            return 0, 0

    def _stop_senders(self) -> None:
        for s in self.senders.values():
            for proc, _ in s.runs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(5)
        self.senders = {}

    def set_link(self, a: str, b: str, **changes: Any) -> str:
        """Change the link a-b while traffic runs (`Emulation.set_link`: the link element applies
        it to every frame after the command, whatever forwards them); what changed, as text."""
        assert self.emu is not None
        before = self.emu.link(a, b).link
        with self.lock:
            after = self.emu.set_link(a, b, **changes)
        return ", ".join(f"{k} {getattr(before, k)!r} -> {getattr(after, k)!r}" for k in changes)

    def report(
        self,
        name: str,
        title: str,
        phases: Sequence[Phase],
        ifit: Mapping[str, Any],
        figures: Sequence[Figure],
        scaling: Sequence[Scaled],
        model: Sequence[str] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        """Scenario's report (phases, paths, flows, IFIT) plus the experiment's figures."""
        report = self._report(list(phases), dict(ifit))
        report.update(
            experiment=name,
            title=title,
            scale=self.scale,
            emulation_prefix=self.emu.prefix if self.emu is not None else None,
            events={p.name: p.events for p in phases if isinstance(p, TimedPhase)},
            figures=[dataclasses.asdict(f) for f in figures],
            scaled=[dataclasses.asdict(s) for s in scaling],
            model=list(model),
            **extra,
        )
        return report
