"""What a `NodeConfig` must satisfy before the reference pipeline runs it.

The YAML loader checks most of this already (with the file's line); a NodeConfig built in
Python gets the same answer here, and the checks that only matter to the data plane (bucket
indexes) live here alone.
"""

from __future__ import annotations

from pyctl import constants as C
from pyctl.errors import ConfigError
from pyctl.model.hashing import bucket_table
from pyctl.model.node import Behaviour, IFITRole, NodeConfig, SRv6Policy
from pyctl.model.trace import area_words, node_len


def policy_buckets(p: SRv6Policy) -> tuple[int, ...]:
    return p.buckets or bucket_table([sl.weight for sl in p.sid_lists])


def check_node(node: NodeConfig) -> None:
    """Refuse what the pipeline cannot run, naming the node and the field."""

    def fail(where: str, message: str) -> ConfigError:
        return ConfigError(f"node {node.name}: {where}", message)

    ports_ = {p.index for p in node.ports}
    for i, r in enumerate(node.routes):
        if r.via.port not in ports_:
            raise fail(f"routes[{i}].port", f"port {r.via.port} is not one of {sorted(ports_)}")
    for i, s in enumerate(node.local_sids):
        if s.adjacency is not None and s.adjacency.port not in ports_:
            raise fail(
                f"local_sids[{i}].adjacency.port",
                f"port {s.adjacency.port} is not one of {sorted(ports_)}",
            )
        if s.adjacency is None and s.behaviour in (
            Behaviour.END_X,
            Behaviour.END_DX4,
            Behaviour.END_DX6,
        ):
            raise fail(f"local_sids[{i}].adjacency", f"is required for {s.behaviour.value}")
        if s.block_bits + s.csid_bits > 128:
            raise fail(
                f"local_sids[{i}].csid_bits",
                f"block_bits + csid_bits = {s.block_bits + s.csid_bits} exceeds 128",
            )
    if node.policies and node.source is None:
        raise fail("source", "is required when the node has SRv6 policies")
    for i, p in enumerate(node.policies):
        for j, sl in enumerate(p.sid_lists):
            if not 1 <= len(sl.segments) <= C.MAX_SEGMENTS:
                raise fail(
                    f"policies[{i}].sid_lists[{j}].segments",
                    f"has {len(sl.segments)} segments; 1 to {C.MAX_SEGMENTS}",
                )
        if not p.sid_lists:
            raise fail(f"policies[{i}].sid_lists", "must not be empty")
        bad = [b for b in policy_buckets(p) if not 0 <= b < len(p.sid_lists)]
        if bad:
            raise fail(
                f"policies[{i}].buckets",
                f"{bad[0]} is not a SID-list index (0..{len(p.sid_lists) - 1})",
            )
    ifit = node.ifit
    if ifit.role is IFITRole.TAIL and (ifit.collector is None or node.source is None):
        raise fail("ifit.collector", "a tail needs a collector and the node's source address")
    if ifit.role is IFITRole.HEAD:
        nl = node_len(ifit.trace_type)
        if not nl or ifit.trace_type & 1:  # bit 23 (the least significant) must be sent as 0
            raise fail(
                "ifit.trace_type", f"{ifit.trace_type:#x} has no node data or sets bit 22/23"
            )
        if area_words(ifit.trace_type, ifit.max_nodes) > C.IOAM_AREA_MAX_WORDS:
            raise fail(
                "ifit.max_nodes",
                f"{ifit.max_nodes} nodes of {nl * 4} octets do not fit in one IOAM option",
            )
    if ifit.period_us < 1 or ifit.d_every < 1:
        raise fail("ifit.period_us", "period_us and d_every must be positive")
    el = node.elephant
    if el.enabled and (el.rows < 1 or el.width < 1 or el.window_us < 1):
        raise fail("elephant", "rows, width and window_us must be positive")
    if node.ecn.enabled and node.ecn.kmax_bytes <= node.ecn.kmin_bytes:
        raise fail("ecn.kmax_bytes", f"{node.ecn.kmax_bytes} must exceed kmin_bytes")
    if node.ecn.line_rate_bps < 1:
        raise fail("ecn.line_rate_bps", f"{node.ecn.line_rate_bps} must be positive")
