"""The node model: YAML loading, validation errors that name field and value, contract hashes."""

from __future__ import annotations

import ipaddress
import zlib
from pathlib import Path
from typing import Any

import pytest

from pyctl.errors import ConfigError
from pyctl.model import load_node, node_from_dict
from pyctl.model.hashing import FlowKey, apn_hash, bucket_table, flow_label, sketch_index
from pyctl.model.node import Behaviour, EncapMode, Flavour, IFITRole

MAC1 = "02:00:00:00:00:01"
MAC2 = "02:00:00:00:00:02"


def base(**extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": "n1",
        "role": "transit",
        "node_id": 7,
        "ports": [{"index": 1, "mac": MAC1}, {"index": 2, "mac": MAC2}],
    }
    node.update(extra)
    return node


def test_full_node_loads() -> None:
    node = node_from_dict(
        base(
            role="headend",
            source="fc00:1::1",
            routes=[{"prefix": "fc00::/16", "port": 2, "mac": "02:00:00:00:09:09"}],
            local_sids=[
                {"sid": "fc00:1:1::/48", "behaviour": "End", "flavours": ["psp", "next-csid"]},
                {
                    "sid": "fc00:1:2::/48",
                    "behaviour": "End.X",
                    "adjacency": {"port": 2, "mac": MAC1},
                },
                {"sid": "fc00:1:3::/48", "behaviour": "End.DT6", "table": 10},
            ],
            policies=[
                {
                    "name": "to-dc",
                    "match": {"dst": "2001:db8:2::/48"},
                    "mode": "H.Encaps.Red",
                    "sid_lists": [
                        {"segments": ["fc00:2::1", "fc00:3::1"], "weight": 3},
                        {"segments": ["fc00:4::1"], "weight": 1},
                    ],
                }
            ],
            apn={"classifiers": [{"match": {"dport": 4791}, "apn_id": 0x10002}]},
            ifit={"role": "head", "flows": [{"match": {}, "flowmon_id": 5}]},
            elephant={"threshold_bytes": 5000},
        )
    )
    assert node.local_sids[0].flavours == {Flavour.PSP, Flavour.NEXT_CSID}
    assert node.local_sids[1].behaviour is Behaviour.END_X
    pol = node.policies[0]
    assert pol.mode is EncapMode.ENCAPS_RED
    assert len(pol.buckets) == 64 and pol.buckets.count(0) == 48 and pol.buckets.count(1) == 16
    assert pol.sid_lists[1].segments == (ipaddress.IPv6Address("fc00:4::1"),)
    assert node.ifit.role is IFITRole.HEAD and node.ifit.flows[0].flowmon_id == 5
    assert node.elephant.enabled and node.elephant.threshold_bytes == 5000
    assert not node.ecn.enabled  # absent section = off


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"ports": [{"index": 1, "mac": "zz"}]}, "ports[0].mac: 'zz' is not a MAC address"),
        ({"node_id": 1 << 24}, "node_id: 16777216 is out of range"),
        ({"role": "router"}, "role: 'router' is not one of"),
        ({"colour": 1}, "unknown field 'colour'"),
        (
            {"local_sids": [{"sid": "fc00::/64", "behaviour": "End.X"}]},
            "local_sids[0].adjacency: is required for End.X",
        ),
        (
            {"local_sids": [{"sid": "fc00::1/64", "behaviour": "End"}]},
            "local_sids[0].sid: 'fc00::1/64' is not a prefix",
        ),
        (
            {"routes": [{"prefix": "fc00::/16", "port": 9, "mac": MAC1}]},
            "routes[0].port: port 9 is not one of the node's ports [1, 2]",
        ),
        (
            {
                "source": "fc00::1",
                "policies": [
                    {"name": "p", "match": {}, "sid_lists": [{"segments": ["fc00::2"] * 9}]}
                ],
            },
            "policies[0].sid_lists[0].segments: has 9 segments",
        ),
        (
            {"policies": [{"name": "p", "match": {}, "sid_lists": [{"segments": ["fc00::2"]}]}]},
            "source: is required when the node has SRv6 policies",
        ),
        ({"ifit": {"role": "tail"}}, "ifit.collector: is required when role is tail"),
        ({"pfc": {"xon_pct": 90}}, "pfc.xon_pct: 90 must be below xoff_pct 80"),
        ({"apn": {"classifiers": [{"match": {}, "apn_id": 1 << 32}]}}, "apn_id: 4294967296"),
        # SPEC 3: 0x31 is IOAM's HBH option type, 0x12 AltMark's
        ({"apn": {"option_type": 0x31}}, "apn.option_type: 0x31 is the IOAM trace option's"),
        ({"apn": {"option_type": 0x12}}, "apn.option_type: 0x12 is the Alternate Marking"),
        # RFC 9486 2: option data <= 255 octets = 10 + 4 x 61 words; 13 x 5 = 65 > 61
        (
            {"ifit": {"role": "head", "max_nodes": 13}},
            "ifit.max_nodes: 13 records of 5 words (trace_type 0xf20000) take 65 words",
        ),
    ],
)
def test_errors_name_field_and_value(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        node_from_dict(base(**patch), "node.yaml")
    assert str(e.value).startswith("node.yaml: ")
    assert message in str(e.value)


def test_load_node_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+: not valid YAML"):
        load_node(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_node(tmp_path / "missing.yaml")


def test_shipped_node_examples_load() -> None:
    root = Path(__file__).resolve().parent.parent / "topologies" / "nodes"
    files = sorted(root.glob("*.yaml"))
    assert files, "topologies/nodes/ ships example nodes"
    for f in files:
        assert load_node(f).name


def test_flow_key_layout_and_hashes() -> None:
    key = FlowKey(
        ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("2001:db8::2"), 17, 1000, 4791
    )
    raw = key.to_bytes()
    assert len(raw) == 37
    assert raw[:16] == bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert raw[32:] == bytes([17, 0x03, 0xE8, 0x12, 0xB7])
    roce = FlowKey(key.src, key.dst, 17, qp=0xABCDEF)
    assert roce.to_bytes()[33:] == b"\x00\xab\xcd\xef"
    assert flow_label(key) == zlib.crc32(raw) & 0xFFFFF
    assert apn_hash(0x00010002, 1) == zlib.crc32(b"\x00\x01\x00\x02")
    assert sketch_index(2, key, 1024) == zlib.crc32(b"\x02" + raw) % 1024


def test_bucket_table_is_weighted_and_interleaved() -> None:
    assert bucket_table([1, 1, 1, 1], 8) == (0, 1, 2, 3, 0, 1, 2, 3)
    t = bucket_table([1, 3], 64)
    assert t.count(1) == 48 and t.count(0) == 16
    assert t[:4] == (1, 0, 1, 1)
    with pytest.raises(ValueError):
        bucket_table([0, 1])


def test_file_errors_carry_the_line(tmp_path: Path) -> None:
    f = tmp_path / "n.yaml"
    f.write_text(
        "name: x\nrole: transit\nnode_id: 1\nports:\n"
        '  - {index: 1, mac: "02:00:00:00:00:01"}\n  - {index: 2, mac: "bad"}\n'
    )
    with pytest.raises(ConfigError, match=r"n.yaml line 6: ports\[1\].mac: 'bad'"):
        load_node(f)


def test_dump_round_trips_every_shipped_and_planned_node() -> None:
    from pyctl.controller.plan import make_plan
    from pyctl.model.dump import node_to_dict
    from pyctl.model.topology import load_topology

    root = Path(__file__).resolve().parent.parent / "topologies"
    nodes = [load_node(f) for f in sorted((root / "nodes").glob("*.yaml"))]
    for topo in sorted(root.glob("*.yaml")):
        nodes += list(make_plan(load_topology(topo)).switches.values())
    for node in nodes:
        assert node_from_dict(node_to_dict(node), "dump") == node


def test_topology_scaled_multiplies_rates_and_volumes_and_keeps_times() -> None:
    from pyctl.model.fields import Field
    from pyctl.model.topology import topology_from_field

    flow = {"name": "f", "src": "h1", "dst": "h2", "rate_mbit": 200, "window_kb": 1125}
    flow["sla"] = {"latency_us": 100000, "loss_ppm": 10, "bandwidth_mbit": 80}
    doc = {
        "name": "t",
        "nodes": [
            {"name": "h1", "kind": "host"},
            {"name": "h2", "kind": "host"},
            {"name": "r1", "kind": "auto", "role": "headend"},
        ],
        "links": [
            {"a": "h1", "b": "r1", "bw_mbit": 100, "delay_ms": 15, "b_to_a": {"bw_mbit": 40}},
            {"a": "r1", "b": "h2"},
        ],
        "flows": [flow],
        "elephant": {"threshold_bytes": 150000},
    }
    topo = topology_from_field(Field(doc, "", "t"))
    half = topo.scaled(0.5)
    (lk, bare), (f,) = half.links, half.flows
    # rates and volumes halve (by hand: 100 -> 50, 40 -> 20, 200 -> 100, 1125 -> 562.5,
    # 80 -> 40, 150000 -> 75000); a link without a rate stays unlimited; times and ratios stay
    assert (lk.bw_mbit, dict(lk.b_to_a)["bw_mbit"], lk.delay_ms) == (50, 20, 15)
    assert bare.bw_mbit is None
    assert (f.rate_mbit, f.window_kb) == (100, 562.5)
    assert (f.sla.bandwidth_mbit, f.sla.latency_us, f.sla.loss_ppm) == (40, 100000, 10)
    assert half.features["elephant"] == {"threshold_bytes": 75000}
    assert topo.scaled(1) is topo
