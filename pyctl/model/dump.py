"""A `NodeConfig` back to the YAML schema of docs/model.md (what `node_from_dict` reads).

Used to hand a derived configuration to a process in another namespace, and to write each
node's configuration into a run directory where a person can read it.
"""

from __future__ import annotations

from typing import Any

from pyctl.model.node import (
    Adjacency,
    APNMark,
    ECNConfig,
    ElephantConfig,
    FlowMatch,
    NodeConfig,
    PFCConfig,
)


def _match(m: FlowMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("src", "dst"):
        value = getattr(m, name)
        if value is not None:
            out[name] = str(value)
    for name in ("proto", "sport", "dport", "dscp", "in_port", "apn_id"):
        value = getattr(m, name)
        if value is not None:
            out[name] = value
    return out


def _adj(a: Adjacency) -> dict[str, Any]:
    return {"port": a.port, "mac": a.mac}


def _mark(m: APNMark) -> dict[str, Any]:
    params = {
        k: getattr(m.params, k)
        for k in ("bandwidth_kbps", "latency_us", "jitter_us", "loss_ppm")
        if getattr(m.params, k) is not None
    }
    out: dict[str, Any] = {"apn_id": m.apn_id, "id_type": m.id_type, "flags": m.flags}
    if params:
        out["params"] = params
    return out


def _plain(section: ElephantConfig | ECNConfig | PFCConfig) -> dict[str, Any]:
    return dict(vars(section))


def node_to_dict(node: NodeConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": node.name,
        "role": node.role.value,
        "node_id": node.node_id,
        "ports": [
            {"index": p.index, "mac": p.mac, **({"ifname": p.ifname} if p.ifname else {})}
            for p in node.ports
        ],
        "flowlabel": node.flowlabel.value,
        "routes": [{"prefix": str(r.prefix), **_adj(r.via), "table": r.table} for r in node.routes],
        "local_sids": [
            {
                "sid": str(s.sid),
                "behaviour": s.behaviour.value,
                "flavours": sorted(f.value for f in s.flavours),
                **({"adjacency": _adj(s.adjacency)} if s.adjacency else {}),
                "table": s.table,
                "block_bits": s.block_bits,
                "csid_bits": s.csid_bits,
            }
            for s in node.local_sids
        ],
        "policies": [
            {
                "name": p.name,
                "match": _match(p.match),
                "mode": p.mode.value,
                "sid_lists": [
                    {"segments": [str(s) for s in sl.segments], "weight": sl.weight}
                    for sl in p.sid_lists
                ],
                "buckets": list(p.buckets),
                "deep_hash": p.deep_hash,
            }
            for p in node.policies
        ],
        "apn": {
            "carrier": node.apn.carrier.value,
            "option_type": node.apn.option_type,
            "srh_tlv_type": node.apn.srh_tlv_type,
            "classifiers": [
                {"match": _match(c.match), **_mark(c.mark)} for c in node.apn.classifiers
            ],
            "qp_map": [{"qp": qp, **_mark(m)} for qp, m in node.apn.qp_map],
            "socket_marks": [{"mark": k, **_mark(m)} for k, m in node.apn.socket_marks],
            "keep_at_egress": node.apn.keep_at_egress,
            "priority_by_apn": [{"apn_id": a, "priority": p} for a, p in node.apn.priority_by_apn],
        },
        "ifit": {
            "role": node.ifit.role.value,
            "namespace_id": node.ifit.namespace_id,
            "trace_type": node.ifit.trace_type,
            "max_nodes": node.ifit.max_nodes,
            "period_us": node.ifit.period_us,
            "d_every": node.ifit.d_every,
            "flows": [
                {"match": _match(f.match), "flowmon_id": f.flowmon_id} for f in node.ifit.flows
            ],
            **(
                {
                    "collector": {
                        "address": str(node.ifit.collector.address),
                        "port": node.ifit.collector.port,
                    }
                }
                if node.ifit.collector
                else {}
            ),
        },
        "elephant": _plain(node.elephant),
        "ecn": _plain(node.ecn),
        "pfc": _plain(node.pfc),
    }
    if node.source is not None:
        out["source"] = str(node.source)
    return out
