"""An experiment's network: its topology (a file under topologies/ or a dict), and what the
experiment reads off it and its plan (propagation delay of a path, the port towards a peer,
the RoCEv2 flows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyctl import constants as C
from pyctl.controller.plan import Plan
from pyctl.errors import ConfigError
from pyctl.model.fields import Field
from pyctl.model.topology import FlowIntent, Topology, load_topology, topology_from_field

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"


def topology(source: str | Mapping[str, Any], where: str = "<experiment>") -> Topology:
    """A topology from a file under topologies/ (by name) or from a dict (the YAML schema)."""
    if isinstance(source, str):
        return load_topology(TOPOLOGIES / source)
    return topology_from_field(Field(dict(source), "", where))


def path_delay_ms(topo: Topology, nodes: Sequence[str]) -> float:
    """Configured propagation delay (one way) along consecutive nodes, from the links' delay_ms."""
    links = {frozenset((lk.a, lk.b)): lk for lk in topo.links}
    total = 0.0
    for a, b in zip(nodes, nodes[1:], strict=False):
        lk = links.get(frozenset((a, b)))
        if lk is None:
            raise ConfigError(topo.source, f"no link between {a!r} and {b!r}")
        total += lk.delay_ms
    return total


def port_towards(plan: Plan, node: str, peer: str) -> int:
    """The port of `node` whose link leads to `peer`."""
    for (n, port), (other, _) in plan.wiring.items():
        if n == node and other == peer:
            return port
    raise ConfigError("topology", f"{node!r} has no link to {peer!r}")


def roce(flows: Sequence[FlowIntent]) -> list[FlowIntent]:
    """The RoCEv2 flows (the traffic receivers listen on UDP 4791 only)."""
    return [f for f in flows if f.dport == C.ROCEV2_UDP_PORT]
