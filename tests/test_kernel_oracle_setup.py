"""The kernel data plane's set-up: which features it supports and which it refuses (node-wide,
or per SID and policy), the plan of ip commands it builds, the triage of captured frames and
MIB counters, registration and cleanup of stale namespaces."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from typing import Any

import pytest
from kernel_oracle_rig import (
    CAPS,
    FULL_CAPS,
    N2,
    N3,
    NODES,
    PREFIX,
    SOURCE,
    _eth,
    _node,
    _outer,
    _policy,
    _srh,
    _u6,
    leaves_nothing_behind,  # noqa: F401 (autouse fixture)
)
from scapy.layers.inet6 import (
    ICMPv6MLReport2,
    ICMPv6ND_NS,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import Ether

from pyctl import netns
from pyctl.errors import ConfigError
from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets import dataplane_class
from pyctl.targets.kernel import KernelDataPlane, KernelUnsupported, cleanup_stale
from pyctl.targets.kernel.capture import parse_snmp, triage
from pyctl.targets.kernel.plan import SID_TABLE, build_plan

pytestmark = [pytest.mark.root, pytest.mark.kernel]


# ---------------------------------------------------------------------------------------------
# What the kernel supports, and what it refuses


@pytest.mark.needs_kernel("seg6")
def test_supports_names_what_the_kernel_lacks() -> None:
    assert KernelDataPlane.unavailable() is None
    for ok in (["End"], ["End.X"], ["H.Encaps", "H.Encaps.Red"], ["End.DT6", "End.DX4", "End.DX6"]):
        assert KernelDataPlane.supports(ok) is None
    assert KernelDataPlane.supports(["SRH-validation", "forwarding", "PSP", "NEXT-CSID"]) is None
    assert KernelDataPlane.supports(["H.Encaps", "APN"]) == "kernel seg6 has no APN"
    for never in ("deep-hash", "elephant", "IFIT-head", "IFIT-transit", "IFIT-tail", "ECN", "PFC"):
        reason = KernelDataPlane.supports([never])
        assert reason is not None and reason.startswith("kernel")
    assert "unknown" not in (KernelDataPlane.supports(["End"]) or "")
    assert (
        KernelDataPlane.supports(["Teleport"])
        == "kernel plane does not know the feature 'Teleport'"
    )
    assert (KernelDataPlane.supports(["End.X", "PSP"]) is None) == CAPS.psp_end_x
    assert (KernelDataPlane.supports(["End.DT4"]) is None) == CAPS.dt4
    assert (KernelDataPlane.supports(["End.DT46"]) is None) == CAPS.dt46


def _with(key: str, **changes: Any) -> NodeConfig:
    return node_from_dict({**NODES[key], **changes})


@pytest.mark.needs_kernel("seg6")
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"apn": {"classifiers": [{"match": {}, "apn_id": 1}]}}, "no APN"),
        ({"ifit": {"role": "transit"}}, "no IFIT"),
        ({"ecn": {"enabled": True}}, "ECN"),
        ({"pfc": {"enabled": True}}, "PFC"),
        ({"policies": [_policy("d", "", "H.Encaps", "fc00::1", dscp=10)]}, "DSCP"),
    ],
)
def test_configure_refuses_node_wide_features(changes: dict[str, Any], message: str) -> None:
    node = _with("router", **changes)
    plane = KernelDataPlane(prefix=PREFIX)
    try:
        with pytest.raises(KernelUnsupported, match=message):
            plane.configure(node)
        assert plane.namespaces == ()
    finally:
        plane.close()


_LAZY_SIDS = [
    {"sid": "fc00:1::51/128", "behaviour": "End", "flavours": ["psp", "next-csid"]},
    {"sid": "fc00:52::/48", "behaviour": "End", "flavours": ["next-csid"], "block_bits": 36},
    {"sid": "fc00:1::53/128", "behaviour": "End.DT4", "table": 10},
    {
        "sid": "fc00:1::54/128",
        "behaviour": "End.X",
        "flavours": ["psp"],
        "adjacency": {"port": 3, "mac": N3},
    },
]


@pytest.mark.needs_kernel("seg6")
@pytest.mark.parametrize(
    ("dst", "message"),
    [
        ("fc00:1::51", "ignores PSP"),
        ("fc00:52::1", "block_bits: 36; kernel NEXT-CSID needs a multiple of 8"),
        ("fc00:1::53", "End.DT4 needs a VRF device" if not CAPS.dt4 else None),
        ("fc00:1::54", "no PSP flavour for End.X" if not CAPS.psp_end_x else None),
        ("2001:db8:9::1", "one SID list per route (policy 'two' has 2)"),
    ],
)
def test_unsupported_sid_or_policy_refuses_only_its_packets(dst: str, message: str | None) -> None:
    """A SID or policy the kernel cannot run does not stop the node: only packets that need it
    raise (so a vector that never uses it still runs)."""
    two_lists = {
        "name": "two",
        "match": {"dst": "2001:db8:9::/48"},
        "sid_lists": [{"segments": ["fc00:2::1"]}, {"segments": ["fc00:3::1"]}],
    }
    node = _with(
        "router",
        local_sids=_LAZY_SIDS + [{"sid": "fc00:1::e/128", "behaviour": "End"}],
        policies=[two_lists],
    )
    plane = KernelDataPlane(prefix=PREFIX)
    try:
        plane.configure(node)
        ok = _eth(1) / _outer("fc00:1::e", 43) / _srh(["fc00:2::9", "fc00:1::e"], 1, 59)
        assert [o.port for o in plane.process(bytes(ok), PacketContext(in_port=1)).outputs] == [2]
        srh = _srh(["fc00:2::9", dst], 1, 41)
        pkt = (
            _eth(1) / _outer(dst, 43) / srh / _u6()
            if dst.startswith("fc00")
            else _eth(1) / _u6(dst)
        )
        if message is None:  # this kernel has it after all
            assert not plane.process(bytes(pkt), PacketContext(in_port=1)).outputs == []
        else:
            with pytest.raises(KernelUnsupported, match=re.escape(message)):
                plane.process(bytes(pkt), PacketContext(in_port=1))
    finally:
        plane.close()


def test_reserved_table_is_a_config_error() -> None:
    node = _with("router", routes=[{"prefix": "2001:db8::/32", "port": 2, "mac": N2, "table": 254}])
    with pytest.raises(ConfigError, match=r"routes\[0\]\.table: table 254 is reserved"):
        build_plan(node, FULL_CAPS, "t")


def test_plan_layout() -> None:
    plan = build_plan(_node("endpoint"), FULL_CAPS, "tester-ns")
    assert plan.veth_cmds[0] == (
        "link add p1 address 02:00:00:00:01:01 mtu 9000 type veth "
        "peer name t1 mtu 9000 netns tester-ns"
    )
    assert "sr tunsrc set fc00:1::1" in plan.node_cmds
    assert "neigh replace 100::3 lladdr 02:00:00:00:03:01 dev p3 nud permanent" in plan.node_cmds
    assert f"rule add pref 100 lookup {SID_TABLE}" in plan.v6_cmds
    assert (
        "route add fc00:0:100::/48 encap seg6local action End flavors next-csid lblen 32 nflen 16 "
        f"dev p1 table {SID_TABLE}"
    ) in plan.v6_cmds
    assert (
        "route add fc00:1::c4/128 encap seg6local action End.DX4 nh4 169.254.0.2 "
        f"dev p1 table {SID_TABLE}" in plan.v6_cmds
    )
    assert "route add 2001:db8:b::/48 via 100::3 dev p3 onlink table 10" in plan.v6_cmds
    assert plan.node_sysctls["net.ipv6.seg6_flowlabel"] == 1
    assert plan.node_sysctls["net.ipv6.conf.default.accept_dad"] == 0
    assert plan.tester_sysctls["net.ipv6.conf.default.disable_ipv6"] == 1
    steering = build_plan(_node("steering"), FULL_CAPS, "t")
    assert (
        "rule add pref 1000 from ::/0 to 2001:db8::/32 ipproto 6 lookup 70001" in steering.v6_cmds
    )
    assert "rule add pref 1002 from 0.0.0.0/0 to 0.0.0.0/0 iif p3 lookup 70003" in steering.v4_cmds
    assert f"rule add pref 201 from {SOURCE}/128 blackhole" in steering.v6_cmds


def test_triage_and_counters() -> None:
    local6 = frozenset({ipaddress.IPv6Address(SOURCE)})
    local4 = frozenset({ipaddress.IPv4Address("192.0.0.8")})
    mld = (
        Ether()
        / IPv6(src="::", dst="ff02::16", hlim=1)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / ICMPv6MLReport2()
    )
    assert triage(bytes(mld), local6, local4).kind == "chatter"
    ns = Ether() / IPv6(src="fe80::1", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fc00::1")
    assert triage(bytes(ns), local6, local4).kind == "chatter"
    forwarded_ns = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6ND_NS(tgt="fc00::1")
    assert triage(bytes(forwarded_ns), local6, local4).kind == "output"
    te = Ether() / IPv6(src=SOURCE, dst="2001:db8::1") / ICMPv6TimeExceeded() / IPv6()
    assert triage(bytes(te), local6, local4) == triage(bytes(te), local6, local4)
    assert triage(bytes(te), local6, local4).reason == "kernel-icmp-time-exceeded"
    transit_te = (
        Ether() / IPv6(src="2001:db8::9", dst="2001:db8::1") / ICMPv6TimeExceeded() / IPv6()
    )
    assert triage(bytes(transit_te), local6, local4).kind == "output"
    assert triage(b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28, local6, local4).kind == "chatter"
    snmp = "Ip: Forwarding InHdrErrors\nIp: 1 7\nIcmp: InMsgs\nIcmp: 3\n"
    assert parse_snmp(snmp) == {"IpForwarding": 1, "IpInHdrErrors": 7, "IcmpInMsgs": 3}
    assert parse_snmp("Ip6InNoRoutes                   \t5\nIcmp6InErrors 0\n") == {
        "Ip6InNoRoutes": 5,
        "Icmp6InErrors": 0,
    }


def test_registered_and_cleanup_of_dead_pids() -> None:
    assert dataplane_class("kernel") is KernelDataPlane
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = netns.create(f"{PREFIX}-{dead.pid}-abc123-t")
    live = netns.create(netns.unique_name(PREFIX))
    try:
        assert stale.name in cleanup_stale(PREFIX)
        assert not stale.exists() and live.exists()
    finally:
        stale.delete()
        live.delete()
