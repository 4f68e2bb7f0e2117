"""The controller's side of a scheduling decision: pin a flow to one SID list of its headend.

The headend gets its planned configuration plus, ahead of the planned policies, one policy per
steered flow that matches only that flow (its 5-tuple as `icpn run` sends it) and carries the
chosen SID list. The flow's IFIT FlowMonID becomes the path's (`Path.flowmon_id`), so that the
collector measures each path apart. The configuration goes to the switch through `apply`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pyctl.controller.plan import Plan
from pyctl.errors import ConfigError
from pyctl.model.node import FlowMatch, NodeConfig, SRv6Policy
from pyctl.model.topology import FlowIntent, Topology


class PathLike(Protocol):
    """What the steerer needs of a scheduler's path (`pyctl.sched.Path`)."""

    @property
    def name(self) -> str: ...
    @property
    def headend(self) -> str: ...
    @property
    def segments(self) -> tuple[str, ...]: ...
    @property
    def flowmon_id(self) -> int | None: ...


class JobLike(Protocol):
    @property
    def name(self) -> str: ...


def sid_list_of(cfg: NodeConfig, segments: Sequence[str], where: str) -> tuple[SRv6Policy, int]:
    """The policy of `cfg` with this SID list, and the list's index."""
    for pol in cfg.policies:
        for i, sl in enumerate(pol.sid_lists):
            if tuple(str(s) for s in sl.segments) == tuple(segments):
                return pol, i
    raise ConfigError(where, f"no SID list of node {cfg.name} is {tuple(segments)}")


def flow_match(plan: Plan, topo: Topology, flow: FlowIntent) -> FlowMatch:
    """The flow's 5-tuple: `icpn run` sends flow i from sport + i."""
    index = [f.name for f in topo.flows].index(flow.name)
    return FlowMatch(
        src=ipaddress.ip_network(plan.hosts[flow.src].address),
        dst=ipaddress.ip_network(plan.hosts[flow.dst].address),
        proto=flow.proto,
        sport=flow.sport + index,
        dport=flow.dport,
    )


class PlanSteerer:
    """Steers the topology's flows by re-pushing their headend's configuration (thread-safe)."""

    def __init__(
        self, plan: Plan, topo: Topology, apply: Callable[[str, NodeConfig], None]
    ) -> None:
        self.plan, self.topo, self._apply = plan, topo, apply
        self.flows = {f.name: f for f in topo.flows}
        self.pinned: dict[str, dict[str, tuple[SRv6Policy, int | None]]] = {}  # head -> flow ->
        self.pushes: list[dict[str, Any]] = []
        self.lock = threading.RLock()  # held across a re-push

    def config(self, headend: str) -> NodeConfig:
        """The headend's planned configuration with the flows pinned so far."""
        cfg = self.plan.switches[headend]
        pins = self.pinned.get(headend, {})
        if not pins:
            return cfg
        new_fids = {
            self.plan.flowmon_ids[f]: fid
            for f, (_, fid) in pins.items()
            if fid is not None and f in self.plan.flowmon_ids
        }
        ifit_flows = tuple(
            dataclasses.replace(x, flowmon_id=new_fids.get(x.flowmon_id, x.flowmon_id))
            for x in cfg.ifit.flows
        )
        return dataclasses.replace(
            cfg,
            policies=(*(p for p, _ in pins.values()), *cfg.policies),
            ifit=dataclasses.replace(cfg.ifit, flows=ifit_flows),
        )

    def pin(self, job: JobLike, path: PathLike) -> NodeConfig:
        """Record the flow on the path; the headend's new configuration."""
        flow = self.flows.get(job.name)
        if flow is None:
            raise ConfigError("job.name", f"{job.name!r} is not a flow of this topology")
        if path.headend not in self.plan.switches:
            raise ConfigError(f"path {path.name}", f"headend {path.headend!r} is not a switch")
        pol, i = sid_list_of(self.plan.switches[path.headend], path.segments, f"path {path.name}")
        pinned = SRv6Policy(
            name=f"{job.name}-pinned",
            match=flow_match(self.plan, self.topo, flow),
            sid_lists=(pol.sid_lists[i],),
            mode=pol.mode,
            buckets=tuple(0 for _ in pol.buckets) or (0,),
            deep_hash=False,
        )
        for pins in self.pinned.values():
            pins.pop(job.name, None)
        self.pinned.setdefault(path.headend, {})[job.name] = (pinned, path.flowmon_id)
        return self.config(path.headend)

    def steer(self, job: JobLike, path: PathLike) -> None:
        with self.lock:
            cfg = self.pin(job, path)
            t0 = time.time()
            self._apply(path.headend, cfg)
            self.pushes.append(
                {"job": job.name, "path": path.name, "time": t0,
                 "took_s": round(time.time() - t0, 3)}
            )  # fmt: skip
