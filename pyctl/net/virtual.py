"""A network of data-plane instances wired by a plan, with no interfaces at all.

Each switch of the plan runs on one data plane instance (reference or eBPF through
BPF_PROG_TEST_RUN); frames leaving a port are handed to the peer port. It is how the controller's
plans are tested packet by packet, and how `icpn run --virtual` shows a topology without Mininet.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pyctl.controller.plan import Plan
from pyctl.errors import ICPNError
from pyctl.model import PacketContext
from pyctl.targets import DataPlane, open_dataplane

MAX_HOPS = 64  # a forwarding loop must not spin forever


@dataclass(frozen=True)
class Hop:
    switch: str
    in_port: int
    outputs: tuple[int, ...]
    drop: str | None


@dataclass
class Delivery:
    """What reached an end point (a host or the collector) and the hops on the way."""

    host: str
    frame: bytes
    time_us: int


@dataclass
class Trace:
    hops: list[Hop] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def delivered_to(self, host: str) -> list[bytes]:
        return [d.frame for d in self.deliveries if d.host == host]


class VirtualNetwork:
    """Owns one data plane per switch; `close()` releases them (also as a context manager)."""

    def __init__(self, plan: Plan, dataplane: str = "reference", hop_delay_us: int = 100) -> None:
        self.plan = plan
        self.hop_delay_us = hop_delay_us
        self.planes: dict[str, DataPlane] = {}
        try:
            for name, cfg in plan.switches.items():
                dp = open_dataplane(dataplane)
                self.planes[name] = dp
                dp.configure(cfg)
        except BaseException:
            self.close()
            raise

    def send(self, host: str, frame: bytes, time_us: int = 0) -> Trace:
        """Send `frame` out of `host`'s interface and follow it (and what it causes) to the end."""
        if host not in self.plan.hosts:
            raise ICPNError(f"{host!r} is not a host of this network")
        trace = Trace()
        first = self.plan.wiring[(host, 1)]
        queue = deque([(first[0], first[1], frame, time_us, 0)])
        while queue:
            node, port, data, t, depth = queue.popleft()
            if node not in self.planes:
                trace.deliveries.append(Delivery(node, data, t))
                continue
            if depth >= MAX_HOPS:
                trace.hops.append(Hop(node, port, (), "loop"))
                continue
            res = self.planes[node].process(data, PacketContext(in_port=port, time_us=t))
            trace.hops.append(Hop(node, port, tuple(o.port for o in res.outputs), res.drop))
            for out in res.outputs:
                peer = self.plan.wiring.get((node, out.port))
                if peer is not None:
                    queue.append((peer[0], peer[1], out.frame, t + self.hop_delay_us, depth + 1))
        return trace

    def close(self) -> None:
        for dp in self.planes.values():
            dp.close()
        self.planes.clear()

    def __enter__(self) -> VirtualNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
