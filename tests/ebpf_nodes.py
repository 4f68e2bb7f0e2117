"""Node configurations the eBPF data-plane tests run, each with most features switched on.

They extend the conformance vectors' nodes (tests/vectors/nodes/) so that one node exercises
many code paths of icpn_node at once: the property tests push random packets through them and
compare every result with the reference plane.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig

NODES = Path(__file__).parent / "vectors" / "nodes"

HEADEND_EXTRA: dict[str, Any] = {
    "flowlabel": "hash",
    "policies": [
        {
            "name": "gold",
            "match": {"dst": "2001:db8:2::/48", "apn_id": 0x00010001},
            "mode": "H.Encaps",
            "sid_lists": [
                {"segments": ["fc00:b::1", "fc00:c::1", "fc00:d::d6"], "weight": 2},
                {"segments": [f"fc00:e::{i}" for i in range(1, 9)]},
            ],
        },
        {
            "name": "red",
            "match": {"dst": "2001:db8:2::/48"},
            "mode": "H.Encaps.Red",
            "sid_lists": [
                {"segments": ["fc00:c::1", "fc00:d::d6"]},
                {"segments": ["fc00:d::d6"]},
            ],
        },
        {
            "name": "v4",
            "match": {"dst": "10.0.2.0/24"},
            "sid_lists": [{"segments": ["fc00:d::d4"]}],
        },
    ],
    "apn": {
        "carrier": "hbh",
        "classifiers": [
            {"match": {"proto": 17, "dport": 5000}, "apn_id": 0x00010001},
            {
                "match": {"dscp": 46},
                "apn_id": 0x0002000300040005,
                "id_type": 2,
                "params": {"bandwidth_kbps": 1000, "loss_ppm": 5},
            },
            {"match": {"in_port": 3}, "apn_id": 7, "id_type": 3, "flags": 0x80},
        ],
        "qp_map": [{"qp": 0xA1, "apn_id": 0x00030003}],
    },
    "ifit": {
        "role": "head",
        "namespace_id": 7,
        "max_nodes": 6,
        "period_us": 1000,
        "d_every": 3,
        "flows": [{"match": {"dst": "2001:db8:2::/48"}, "flowmon_id": 0x12345}],
    },
    "elephant": {"window_us": 1000, "threshold_bytes": 3000, "idle_windows": 1, "width": 64},
    "ecn": {"kmin_bytes": 1000, "kmax_bytes": 5000, "pmax": 0.5},
    "pfc": {"buffer_bytes": 10000, "xoff_pct": 80, "xon_pct": 50, "pause_time": 100},
}

TRANSIT_EXTRA: dict[str, Any] = {
    "local_sids_extra": [
        {"sid": "fc00:b::d6/128", "behaviour": "End.DT6", "table": 0},
        {"sid": "fc00:b::d4/128", "behaviour": "End.DT46", "table": 0},
        {
            "sid": "fc00:b::c4/128",
            "behaviour": "End.DX4",
            "adjacency": {"port": 3, "mac": "02:00:00:00:0e:01"},
        },
    ],
    "routes_extra": [{"prefix": "10.0.0.0/8", "port": 2, "mac": "02:00:00:00:0c:01"}],
    "ifit": {"role": "transit", "namespace_id": 7},
    "ecn": {"kmin_bytes": 1000, "kmax_bytes": 5000, "pmax": 0.5},
    "pfc": {"buffer_bytes": 10000, "pause_time": 100, "priority_from_dscp": True},
}

EGRESS_EXTRA: dict[str, Any] = {
    "ifit": {"role": "tail", "namespace_id": 7, "collector": {"address": "fc00:99::1"}},
    "apn": {"carrier": "doh"},
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((NODES / f"{name}.yaml").read_text())
    return data


def node_dict(kind: str) -> dict[str, Any]:
    """The YAML dict of one of "headend", "transit", "egress" with its extras merged in."""
    extra = copy.deepcopy(
        {"headend": HEADEND_EXTRA, "transit": TRANSIT_EXTRA}.get(kind, EGRESS_EXTRA)
    )
    data = _load(kind)
    data["local_sids"] = data.get("local_sids", []) + extra.pop("local_sids_extra", [])
    data["routes"] = data.get("routes", []) + extra.pop("routes_extra", [])
    data.update(extra)
    return data


def node(kind: str) -> NodeConfig:
    return node_from_dict(node_dict(kind), f"tests/ebpf_nodes.py:{kind}")
