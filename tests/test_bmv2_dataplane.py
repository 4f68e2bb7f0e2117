"""The BMv2 data plane on a real simple_switch_grpc: restart, CRC-32, drops, two switches at once.

(The conformance vectors run on BMv2 through tests/test_vectors.py.)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether

from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.p4rt import P4RuntimeError
from pyctl.targets.bmv2.dataplane import BMv2DataPlane
from pyctl.targets.bmv2.links import stale_namespaces

REASON = BMv2DataPlane.unavailable()
pytestmark = [
    pytest.mark.bmv2,
    pytest.mark.skipif(REASON is not None, reason=f"BMv2 data plane: {REASON}"),
]

MAC_IN = "02:00:00:00:0a:01"
MAC_OUT = "02:00:00:00:0a:02"
NEXT = "02:00:00:00:0b:01"


def transit_node(**extra: object) -> NodeConfig:
    data: dict[str, object] = {
        "name": "T",
        "role": "transit",
        "node_id": 7,
        "source": "fc00:a::1",
        "ports": [{"index": 1, "mac": MAC_IN}, {"index": 2, "mac": MAC_OUT}],
        "routes": [{"prefix": "fc00:b::/32", "port": 2, "mac": NEXT}],
        "local_sids": [{"sid": "fc00:a::/48", "behaviour": "End"}],
    }
    data.update(extra)
    return node_from_dict(data, "test")


def srv6_frame(hlim: int = 64) -> bytes:
    pkt = (
        Ether(src="02:00:00:00:09:09", dst=MAC_IN)
        / IPv6(src="2001:db8::1", dst="fc00:a::1", hlim=hlim)
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:b::1", "fc00:a::1"], segleft=1)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=1000, dport=2000)
        / b"payload"
    )
    return bytes(pkt)


@pytest.fixture
def plane() -> Iterator[BMv2DataPlane]:
    dp = BMv2DataPlane()
    try:
        yield dp
    finally:
        dp.close()
        assert dp.links is None


def test_end_forwards_and_drop_reasons_come_back(plane: BMv2DataPlane) -> None:
    plane.configure(transit_node())
    res = plane.process(srv6_frame(), PacketContext(in_port=1))
    assert res.drop is None
    (out,) = res.outputs
    assert out.port == 2
    pkt = Ether(out.frame)
    assert pkt[Ether].src == MAC_OUT and pkt[Ether].dst == NEXT
    assert pkt[IPv6].dst == "fc00:b::1" and pkt[IPv6].hlim == 63
    assert pkt[IPv6ExtHdrSegmentRouting].segleft == 0
    dropped = plane.process(srv6_frame(hlim=1), PacketContext(in_port=1))
    assert dropped.drop == "hop-limit" and dropped.outputs == []


def test_restart_restores_every_entry(plane: BMv2DataPlane) -> None:
    plane.configure(transit_node())
    before = plane.process(srv6_frame(), PacketContext(in_port=1))
    assert plane.switch is not None
    entries_before = {t: len(plane.switch.read_table(t)) for t in ("fib", "my_sid", "port_mac")}
    old_pid = plane.process_.pid if plane.process_ else None
    plane.kill_switch()  # the switch crashes mid-run
    after = plane.process(srv6_frame(), PacketContext(in_port=1))  # the controller notices
    assert plane.restarts == 1
    assert plane.process_ is not None and plane.process_.pid != old_pid
    assert [(o.port, o.frame) for o in after.outputs] == [(o.port, o.frame) for o in before.outputs]
    entries_after = {t: len(plane.switch.read_table(t)) for t in entries_before}
    assert entries_after == entries_before == {"fib": 1, "my_sid": 1, "port_mac": 2}


def test_flow_label_hash_is_zlib_crc32(plane: BMv2DataPlane) -> None:
    node = transit_node(
        role="headend",
        routes=[{"prefix": "fc00::/16", "port": 2, "mac": NEXT}],
        local_sids=[],
        policies=[
            {
                "name": "p",
                "match": {"dst": "2001:db8::/32"},
                "sid_lists": [{"segments": ["fc00:b::1", "fc00:c::1"]}],
            }
        ],
    )
    plane.configure(node)
    for sport in (1, 2, 40000, 65535):
        frame = bytes(
            Ether(dst=MAC_IN)
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / UDP(sport=sport, dport=9)
        )
        (out,) = plane.process(frame, PacketContext(in_port=1)).outputs
        key = (
            bytes.fromhex("20010db8" + "00" * 11 + "01")
            + bytes.fromhex("20010db8" + "00" * 11 + "02")
            + bytes([17])
            + sport.to_bytes(2, "big")
            + (9).to_bytes(2, "big")
        )
        assert Ether(out.frame)[IPv6].fl == zlib.crc32(key) & 0xFFFFF


def test_two_switches_at_once() -> None:
    a, b = BMv2DataPlane(), BMv2DataPlane()
    try:
        a.configure(transit_node())
        b.configure(transit_node(name="U"))
        assert a.links and b.links and a.links.netns != b.links.netns
        for dp in (a, b):
            (out,) = dp.process(srv6_frame(), PacketContext(in_port=1)).outputs
            assert out.port == 2
    finally:
        a.close()
        b.close()
    assert not [ns for ns in stale_namespaces() if ns in (a.links, b.links)]


def test_switch_refusal_names_entity_and_field(plane: BMv2DataPlane) -> None:
    from pyctl.p4rt import LPM, TableEntry

    plane.configure(transit_node())
    assert plane.switch is not None
    dup = TableEntry(
        "fib",
        {"vrf": 0, "family": 6, "addr": LPM("fc00:b::", 32)},
        "set_nexthop",
        {"port": 2, "dmac": NEXT},
    )
    with pytest.raises(P4RuntimeError) as e:
        plane.switch.insert([dup])
    assert e.value.entity is not None and "fib" in e.value.entity
    assert e.value.code == "ALREADY_EXISTS"
