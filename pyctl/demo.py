"""`icpn demo`: flows through a headend -> transit -> egress SRv6 chain, shown hop by hop.

The chain is the three example nodes of topologies/nodes/. Each node runs on the chosen data
plane; frames leaving a node are handed to the next one by a wiring table, with a simulated
per-hop delay so that the IFIT trace carries distinct timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyctl.errors import DataPlaneUnavailable, ICPNError
from pyctl.model import PacketContext, load_node
from pyctl.packetio import describe, summary
from pyctl.targets import DATAPLANES, DataPlane, dataplane_class, open_dataplane

NODES = Path(__file__).resolve().parent.parent / "topologies" / "nodes"
CHAIN = ("headend", "transit", "egress")
# (node, egress port) -> (next node, its ingress port), or a named end point.
WIRING: dict[tuple[str, int], tuple[str, int]] = {
    ("headend", 2): ("transit", 1),
    ("transit", 1): ("headend", 2),
    ("transit", 2): ("egress", 1),
    ("egress", 1): ("transit", 2),
}
ENDPOINTS = {("egress", 2): "host B", ("egress", 3): "collector", ("headend", 1): "host A"}
HOP_DELAY_US = 250


@dataclass(frozen=True)
class Flow:
    label: str
    frame: bytes


def sample_flows() -> list[Flow]:
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from pyctl.packets import roce_packet

    eth = Ether(src="02:00:00:00:0a:01", dst="02:00:00:01:00:01")
    roce = roce_packet("2001:db8:a::1", "2001:db8:b::1", dest_qp=0x11, payload=b"\x00" * 64)
    roce[Ether].src, roce[Ether].dst = eth.src, eth.dst
    mouse = (
        eth
        / IPv6(src="2001:db8:a::1", dst="2001:db8:b::2", tc=0x02)
        / UDP(sport=40000, dport=53)
        / Raw(b"query")
    )
    return [
        Flow("RoCEv2 elephant-candidate (classified to APN-ID 0x00010002)", bytes(roce)),
        Flow("UDP mouse, ECT(0)", bytes(mouse)),
    ]


def _run_chain(planes: dict[str, DataPlane], flow: Flow) -> None:
    from scapy.layers.l2 import Ether

    from pyctl.packets import IFITReport

    pending = [("headend", 1, flow.frame, 0)]
    while pending:
        node, port, frame, t = pending.pop(0)
        res = planes[node].process(frame, PacketContext(in_port=port, time_us=t))
        print(f"  {node:8s} in port {port}: {describe(res)}")
        for out in res.outputs:
            nxt = WIRING.get((node, out.port))
            if nxt is not None:
                pending.append((nxt[0], nxt[1], out.frame, t + HOP_DELAY_US))
                continue
            end = ENDPOINTS.get((node, out.port), f"port {out.port}")
            print(f"  -> {end}: {summary(out.frame)}")
            pkt = Ether(out.frame)
            if IFITReport in pkt:
                rep = pkt[IFITReport]
                recs = rep.records()
                path = " -> ".join(str(r.node_id) for r in reversed(recs))
                print(f"     IFIT report: flow {rep.flowmon_id}, {len(recs)} hops, path {path}")
                prev = None
                for r in reversed(recs):
                    ts = (r.ts_sec or 0) * 1_000_000 + (r.ts_subsec or 0)
                    step = "" if prev is None else f" (+{ts - prev} us)"
                    print(f"       node {r.node_id}: in {r.ingress_if} out {r.egress_if}{step}")
                    prev = ts


def run_demo(dataplane: str | None) -> int:
    names = [dataplane] if dataplane else list(DATAPLANES)
    nodes = {n: load_node(NODES / f"{n}.yaml") for n in CHAIN}
    ran = 0
    for name in names:
        cls = dataplane_class(name)
        supports = getattr(cls, "supports", None)
        reason = cls.unavailable() or (
            supports(["H.Encaps", "End", "End.DT6", "APN", "IFIT-head", "IFIT-tail"])
            if supports
            else None
        )
        if reason:
            print(f"== {name}: skipped ({reason})")
            continue
        print(f"== data plane: {name}")
        planes: dict[str, DataPlane] = {}
        try:
            for n in CHAIN:
                planes[n] = open_dataplane(name)
                planes[n].configure(nodes[n])
            for flow in sample_flows():
                print(f" {flow.label}")
                _run_chain(planes, flow)
        except DataPlaneUnavailable as e:
            print(f"== {name}: skipped ({e})")
            continue
        finally:
            for p in planes.values():
                p.close()
        ran += 1
    if not ran:
        raise ICPNError("no data plane could run the demo (see the reasons above)")
    return 0
