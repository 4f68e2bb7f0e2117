"""The bytes a flow's packet takes on its backbone links: what a link serialises per packet.

A packet's IFIT per-hop delay includes the time its own frame takes to cross the link at the
link's rate (the far node stamps it once the whole frame has arrived): at the emulated rates
(tens of Mbit/s) one 4 KB RoCE frame takes 0.66 ms, which the pilot's 100 Gbit/s links spend in
0.3 µs. The run's report takes it out to show the link's propagation (pyctl.net.linkreport).

The frame is the flow's packet as its sender sends it, put through its headend's configuration
by the reference data plane (the contract: outer header, SRH, APN and IFIT options): the same
length on every hop to the egress, transit nodes writing into room the head pre-allocated.
"""

from __future__ import annotations

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from pyctl import constants as C
from pyctl.controller.plan import Plan
from pyctl.controller.steer import flow_match
from pyctl.errors import ICPNError
from pyctl.model.node import PacketContext
from pyctl.model.topology import FlowIntent, Topology
from pyctl.targets.reference.pipeline import ReferenceDataPlane

ECT0 = 0x02  # the senders mark ECT(0) (pyctl.net.traffic)


def backbone_frame_bytes(plan: Plan, topo: Topology, flow: FlowIntent, payload: int) -> int | None:
    """Length of the flow's frame (L2, no FCS) as its headend sends it on, for a UDP or TCP
    payload of `payload` octets; None when the headend drops it or the flow has no headend."""
    src, dst = plan.hosts.get(flow.src), plan.hosts.get(flow.dst)
    if src is None or dst is None or src.switch not in plan.switches:
        return None
    match = flow_match(plan, topo, flow)
    l4: Packet = (
        TCP(sport=match.sport, dport=match.dport)
        if flow.proto == C.IPPROTO_TCP
        else UDP(sport=match.sport, dport=match.dport)
    )
    frame = (
        Ether(src=src.mac, dst=src.gateway_mac)
        / IPv6(src=str(src.address), dst=str(dst.address), tc=ECT0, hlim=64)
        / l4
        / Raw(bytes(payload))
    )
    plane = ReferenceDataPlane()
    try:
        plane.configure(plan.switches[src.switch])
        result = plane.process(bytes(frame), PacketContext(in_port=src.switch_port))
    except ICPNError:
        return None
    if result.drop is not None or not result.outputs:
        return None
    return len(result.outputs[-1].frame)  # the forwarded frame comes after any side output
