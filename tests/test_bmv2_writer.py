"""NodeConfig -> P4Runtime entities (pyctl/targets/bmv2/writer.py), checked against the committed
P4Info: every entity of every example node must encode (names, widths, actions of the table)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pyctl.model import load_node
from pyctl.model.load import node_from_dict
from pyctl.model.node import PacketContext
from pyctl.p4rt import LPM, Codec, P4Info, TableEntry, Ternary
from pyctl.targets.bmv2 import build, codes
from pyctl.targets.bmv2.writer import (
    P4Unsupported,
    check_limits,
    context_writes,
    ecn_top,
    magic,
    node_program,
    with_value_sets,
)

ROOT = Path(__file__).resolve().parent.parent
NODES = sorted((ROOT / "topologies" / "nodes").glob("*.yaml")) + sorted(
    (ROOT / "tests" / "vectors" / "nodes").glob("*.yaml")
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    if not build.P4INFO.exists():
        pytest.skip("p4/build/icpn.p4info.txt not built (p4c absent)")
    return Codec(P4Info.load(build.P4INFO))


def _node(extra: dict[str, object] | None = None) -> object:
    data: dict[str, object] = {
        "name": "A",
        "role": "headend",
        "node_id": 1,
        "source": "fc00:a::1",
        "ports": [
            {"index": 1, "mac": "02:00:00:00:0a:01"},
            {"index": 2, "mac": "02:00:00:00:0a:02"},
        ],
        "routes": [
            {"prefix": "fc00:b::/32", "port": 2, "mac": "02:00:00:00:0b:01"},
            {"prefix": "10.0.0.0/8", "port": 1, "mac": "02:00:00:00:0c:01"},
        ],
    }
    data.update(extra or {})
    return node_from_dict(data, "test")


def test_magic_division_is_exact_over_the_p4_ranges() -> None:
    rng = random.Random(7)
    for d in [1, 3, 7, 1000, 100_000, 999_983, 1_000_000, (1 << 32) - 1]:
        m = magic(d, codes.MAGIC_SHIFT_TIME)
        samples = [0, 1, d - 1, d, d + 1, (1 << 48) - 1] + [
            rng.randrange(1 << 48) for _ in range(300)
        ]
        for t in samples:
            assert (t * m) >> codes.MAGIC_SHIFT_TIME == t // d, (t, d)
    for rate in [10**9, 25 * 10**9, 100 * 10**9, 1_000_003]:
        m = magic(rate, codes.MAGIC_SHIFT_PAUSE)
        for q in [0, 1, 2, 0x7FFF, 0xFFFF] + [rng.randrange(1 << 16) for _ in range(100)]:
            n = q * 512 * 1_000_000
            assert (n * m) >> codes.MAGIC_SHIFT_PAUSE == n // rate


@pytest.mark.parametrize("path", NODES, ids=lambda p: p.name)
def test_every_example_node_encodes_against_the_p4info(codec: Codec, path: Path) -> None:
    node = load_node(path)
    if check_limits(node):
        with pytest.raises(P4Unsupported):
            node_program(node)
        return
    prog = node_program(node)
    for entity in [*prog.defaults, *prog.inserts()]:
        codec.entity(entity)  # raises P4InfoError naming entity and field on any mismatch
    tables = {e.table for e in prog.entries}
    assert {"port_mac", "port_in"} <= tables
    if node.routes:
        assert "fib" in tables


def test_routes_sids_and_ports(codec: Codec) -> None:
    node = _node(
        {
            "local_sids": [
                {"sid": "fc00:a::/48", "behaviour": "End", "flavours": ["psp"]},
                {"sid": "fc00:a:1::/48", "behaviour": "End", "flavours": ["next-csid"]},
                {"sid": "fc00:a::d6/128", "behaviour": "End.DT6", "table": 5},
            ]
        }
    )
    prog = node_program(node)  # type: ignore[arg-type]
    fib = [e for e in prog.entries if e.table == "fib"]
    v4 = next(e for e in fib if e.match["family"] == codes.FAMILY_IPV4)
    assert v4.match["addr"] == LPM(0xFFFF0A000000, 104)
    sids = {str(e.match["sid"]): e for e in prog.entries if e.table == "my_sid"}
    psp = next(e for e in sids.values() if e.params.get("psp") == 1)
    assert psp.action == "end" and psp.params["csid"] == 0
    csid = next(e for e in sids.values() if e.params.get("csid") == 1)
    assert csid.params["block"] == 0xFFFFFFFF << 96
    assert csid.params["arg"] == (1 << 80) - 1 and csid.params["csid_bits"] == 16
    dt6 = next(e for e in sids.values() if e.action == "end_dt6")
    assert dt6.params == {"table_id": 5}
    # local_sid (is the DA an End wrote a local SID?) holds the same three prefixes, hit only
    local = [e for e in prog.entries if e.table == "local_sid"]
    assert {(e.match["sid"], e.action) for e in local} == {
        (LPM(0xFC00000A << 96, 48), "NoAction"),
        (LPM(0xFC00000A0001 << 80, 48), "NoAction"),
        (LPM(0xFC00000A << 96 | 0xD6, 128), "NoAction"),
    }
    for e in prog.entries:
        codec.entity(e)
    # test mode: frames too long for a veth reach the controller by this session
    assert any(
        s.session_id == codes.CPU_SESSION and s.replicas == ((codes.CPU_PORT, 0),)
        for s in prog.clone_sessions
    )


def test_encaps_and_red_segment_lists_in_wire_order() -> None:
    segs = ["fc00:1::1", "fc00:2::1", "fc00:3::1"]
    for mode, n_srh in (("H.Encaps", 3), ("H.Encaps.Red", 2)):
        node = _node(
            {
                "policies": [
                    {
                        "name": "p",
                        "match": {"dst": "2001:db8::/32"},
                        "mode": mode,
                        "sid_lists": [{"segments": segs, "weight": 1}],
                    }
                ]
            }
        )
        prog = node_program(node)  # type: ignore[arg-type]
        buckets = [e for e in prog.entries if e.table == "policy_bucket"]
        assert len(buckets) == 64
        enc = buckets[0]
        assert enc.action == f"encap{n_srh}"
        p = enc.params
        assert p["segments_left"] == 2
        assert p["first_sid"] == int.from_bytes(bytes.fromhex("fc000001" + "00" * 11 + "01"), "big")
        # List[0] is the last segment
        assert p["seg0"] == int.from_bytes(bytes.fromhex("fc000003" + "00" * 11 + "01"), "big")
        assert f"seg{n_srh}" not in p
        (pol,) = [e for e in prog.entries if e.table == "policy"]
        assert pol.params["buckets"] == 64 and pol.priority > 0


def test_ecn_is_configured_in_bytes() -> None:
    """docs/pipeline.md 5: byte thresholds, floor(pmax * 2^32) (2^32 for pmax 1.0)."""
    node = _node({"ecn": {"enabled": True, "kmin_bytes": 20_000, "kmax_bytes": 100_000}})
    prog = node_program(node)  # type: ignore[arg-type]
    (cfg,) = [e for e in prog.defaults if e.table == "ecn_cfg"]
    assert cfg.params == {"kmin_bytes": 20_000, "kmax_bytes": 100_000, "pmax_t": 858993459}
    (ncfg,) = [e for e in prog.defaults if e.table == "node_cfg"]
    assert ncfg.params["ecn"] == 1
    assert ecn_top(1.0) == 1 << 32 and ecn_top(0.5) == 1 << 31 and ecn_top(0.0) == 0


def test_limits_are_refused_with_the_field_and_value() -> None:
    node: Any = _node({"elephant": {"enabled": True, "width": 8192}, "ifit": {"role": "head"}})
    # a head area past one option: the loader refuses it; a node built in Python may not
    big = dataclasses.replace(node, ifit=dataclasses.replace(node.ifit, max_nodes=16))
    problems = check_limits(big)
    assert any("elephant.width 8192" in p for p in problems)
    assert any("max_nodes 16: more than one IOAM option holds" in p for p in problems)
    # 3 records of 25 words (75 > 61): the empty area (50 words) would fit the program's
    # buffers, but not one option (10 + 4 x 75 > 255 octets of option data)
    long3 = dataclasses.replace(
        node, ifit=dataclasses.replace(node.ifit, trace_type=0xFFFFFC, max_nodes=3)
    )
    assert any("0xfffffc with max_nodes 3: more than one" in p for p in check_limits(long3))
    with pytest.raises(P4Unsupported, match="node 'A'"):
        node_program(big)


def test_head_flowmon_ids_sharing_a_counter_slot_are_refused() -> None:
    """1029 = 5 + 1024: the program keeps one FlowMonID per slot (docs/p4.md limits), so a head
    that would count both refuses at configuration; 5 twice, or 5 and 6, is fine."""

    def head(*ids: int) -> Any:
        flows = [{"match": {"dst": "2001:db8:2::/48"}, "flowmon_id": i} for i in ids]
        return _node({"ifit": {"role": "head", "flows": flows}})

    assert check_limits(head(5, 6)) == [] and check_limits(head(5, 5)) == []
    assert check_limits(head(5, 1029)) == [
        "ifit.flows flowmon_id 1029: shares counter slot 5 with flowmon_id 5 "
        "(FlowMonIDs equal mod 1024)"
    ]


def test_a_head_lays_out_every_area_one_option_holds() -> None:
    """The default type in 12 records (60 words) and the longest record (0xFFFFFC: 25 words)
    twice: both by the word-by-word head (vectors ifit/head-full-option, head-longest-record)."""
    for ifit in ({"max_nodes": 12}, {"trace_type": 0xFFFFFC, "max_nodes": 2}):
        head: Any = _node({"ifit": {"role": "head", **ifit}})
        assert check_limits(head) == []
        (cfg,) = [e for e in node_program(head).defaults if e.table == "ifit_head_cfg"]
        assert cfg.action == "set_ifit_head_gen"


def test_within_the_model_ranges_nothing_is_refused() -> None:
    """Ports 0..63, any APN option type, 8 sketch rows, any byte thresholds: no P4 limit."""
    node = _node(
        {
            "ports": [
                {"index": 0, "mac": "02:00:00:00:0a:01"},
                {"index": 63, "mac": "02:00:00:00:0a:02"},
            ],
            "routes": [{"prefix": "fc00:b::/32", "port": 63, "mac": "02:00:00:00:0b:01"}],
            "apn": {"option_type": 0x3E},
            "elephant": {"enabled": True, "rows": 8, "width": 4096},
            "ecn": {"enabled": True, "kmin_bytes": 0, "kmax_bytes": 1 << 30, "pmax": 1.0},
        }
    )
    assert check_limits(node) == []  # type: ignore[arg-type]
    prog = node_program(node)  # type: ignore[arg-type]
    assert prog.value_sets == {"apn_option_type": (0x3E,)}


def _vset_transitions(program: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    out = []
    for parser in program["parsers"]:  # type: ignore[attr-defined]
        for state in parser["parse_states"]:
            for t in state["transitions"]:
                out.append((state["name"], t))
    return out


def test_value_sets_are_written_into_the_program() -> None:
    """The committed program selects on the value set in the HBH and in both DOHs; the loaded
    program selects on the node's option type there instead (nothing on an empty set)."""
    if not build.JSON.exists():
        pytest.skip("p4/build/icpn.json not built (p4c absent)")
    base = build.JSON.read_bytes()
    vset = [(st, t) for st, t in _vset_transitions(json.loads(base)) if t["type"] == "parse_vset"]
    states = {st for st, _ in vset}
    assert {"hbh_other", "doh1_tlv_type", "doh2_tlv_type"} <= states
    prog = node_program(_node({"apn": {"option_type": 0x3E}}))  # type: ignore[arg-type]
    loaded = json.loads(prog.device_config(base))
    after = _vset_transitions(loaded)
    assert not [t for _, t in after if t["type"] == "parse_vset"]
    for st, t in vset:
        (new,) = [n for s2, n in after if s2 == st and n["next_state"] == t["next_state"]]
        assert new == {
            "type": "hexstr",
            "value": "0x3e",
            "mask": None,
            "next_state": t["next_state"],
        }
    empty = json.loads(with_value_sets(base, (("apn_option_type", ()),)))
    assert len(_vset_transitions(empty)) == len(after) - len(vset)
    with pytest.raises(ValueError, match="no_such_set"):
        with_value_sets(base, (("no_such_set", (1,)),))


def test_classifier_matches_become_ternary_keys(codec: Codec) -> None:
    node = _node(
        {
            "apn": {
                "classifiers": [
                    {
                        "match": {"src": "10.1.0.0/16", "dport": 4791, "dscp": 26},
                        "apn_id": 0x10002,
                        "params": {"bandwidth_kbps": 1000, "loss_ppm": 5},
                    },
                    {"match": {"in_port": 2}, "apn_id": 7},
                    {"match": {"in_port": 3}, "apn_id": 0x1122334455667788, "id_type": 2},
                ]
            }
        }
    )
    prog = node_program(node)  # type: ignore[arg-type]
    first, second, third = [e for e in prog.entries if e.table == "apn_classifier"]
    assert first.priority > second.priority > third.priority
    assert first.match["src"] == Ternary(0xFFFF0A010000, ((1 << 112) - 1) << 16)
    assert first.match["dport"] == Ternary(4791, 0xFFFF)
    assert first.match["proto"] == Ternary(0, 0)
    assert first.params["para_type"] == 0x9000 and first.params["nwords"] == 3
    assert (first.params["w0"], first.params["w1"], first.params["w2"]) == (0x10002, 1000, 5)
    # Three words take set_mark (eight word parameters); one or two take set_mark_short (two):
    # the 64-bit ID's words high first (SPEC 2: the APN-ID in network order).
    assert first.action == "set_mark" and first.params["w7"] == 0
    assert second.action == "set_mark_short" and second.params["nwords"] == 1
    assert (second.params["w0"], second.params["w1"]) == (7, 0) and "w2" not in second.params
    assert third.action == "set_mark_short" and third.params["nwords"] == 2
    assert (third.params["w0"], third.params["w1"]) == (0x11223344, 0x55667788)
    for e in prog.entries:
        codec.entity(e)


def test_context_writes(codec: Codec) -> None:
    ctx = PacketContext(
        in_port=1,
        time_us=1_500_000,
        rand32=9,
        egress_queue_packets={2: 12},
        egress_queue_bytes={3: 1 << 40},
        ingress_queue_bytes={(1, 3): 90_000},
    )
    w = context_writes(ctx)
    assert w.default == TableEntry(
        "test_ctx", action="set_context", params={"time_us": 1_500_000, "rand32": 9}, default=True
    )
    assert [(e.match, e.params) for e in w.qdepth] == [
        ({"port": 2}, {"packets": 12, "bytes": 0}),
        ({"port": 3}, {"packets": 0, "bytes": 0xFFFFFFFF}),  # (beyond Kmax < 2^30 either way)
    ]
    assert [e.match for e in w.ingress_queue] == [{"port": 1, "priority": 3}]
    for e in [w.default, *w.qdepth, *w.ingress_queue]:
        codec.entity(e)


def test_trace_words_follow_the_trace_type() -> None:
    """RFC 9197 order: bit 0 hop limit + node id, bit 1 ports, bits 2-3 time, bit 6 queue; a
    field the P4 node cannot provide (bit 5 namespace data, bit 10 wide: 2 words) is all ones."""
    from pyctl.targets.bmv2.writer import _trace_words

    assert _trace_words(0xF20000) == [0, 1, 2, 3, 4]
    assert _trace_words(0x842000) == [0, 5, 5, 5]


def _switch_record(entries: dict[tuple[str, int], dict[str, int]], trace_type: int) -> bytes:
    """What p4/include/ifit.p4 lays out for `trace_type` from the octet tables: each octet's
    words and 4-bit sources, concatenated (IoamCheck), then word j = word sel[4j+3:4j] of
    hop limit | node id, ports, seconds, µs, queue depth, ones (IoamStamp)."""
    hop = {  # Hop(0x3E, 11, 1, 2, 7_000_123, 9) below
        codes.GEN_HOP_NODE: 0x3E << 24 | 11,
        codes.GEN_PORTS: 1 << 16 | 2,
        codes.GEN_SECONDS: 7,
        codes.GEN_MICROS: 123,
        codes.GEN_QDEPTH: 9,
        codes.GEN_ONES: 0xFFFFFFFF,
    }
    words, sel = 0, 0
    for table, shift in (
        ("ioam_trace_bits_0_7", 16),
        ("ioam_trace_bits_8_15", 8),
        ("ioam_trace_bits_16_23", 0),
    ):
        p = entries.get((table, trace_type >> shift & 0xFF), {"words": 0, "sel": 0})
        sel |= p["sel"] << (4 * words)
        words += p["words"]
    return b"".join(hop[sel >> (4 * j) & 0xF].to_bytes(4, "big") for j in range(words))


def test_trace_octet_tables_lay_out_the_reference_record(codec: Codec) -> None:
    """A transit's tables give, for any trace type a node stamps, the record the reference
    model writes (pyctl.targets.reference.ifit.node_data, from RFC 9197 sizes); every octet
    value of each third has an entry unless it has no words."""
    from pyctl.model.trace import node_len
    from pyctl.targets.reference.ifit import Hop, node_data

    prog = node_program(_node({"role": "transit", "ifit": {"role": "transit"}}))  # type: ignore[arg-type]
    octets = [e for e in prog.entries if e.table.startswith("ioam_trace_bits_")]
    for e in octets:
        codec.entity(e)
    entries = {(e.table, e.match["octet"]): e.params for e in octets}
    assert len(entries) == len(octets)
    hop = Hop(0x3E, 11, 1, 2, 7_000_123, 9)
    rng = random.Random(7)
    types = [1 << i for i in range(24)] + [0xF20000, 0xFFFFFC, 0x896208]
    types += [rng.randrange(1 << 24) for _ in range(3000)]
    for tt in types:
        if node_len(tt) is None:  # bit 22: the switch refuses it before any table
            continue
        record = _switch_record(entries, tt)
        assert record == node_data(tt, hop), hex(tt)
        assert len(record) // 4 <= codes.IOAM_RECORD_WORDS
    assert max(len(_switch_record(entries, tt)) for tt in types) // 4 == codes.IOAM_RECORD_WORDS


def test_ioam_sizes_cover_every_option() -> None:
    """The switch parses a trace's area word by word into IOAM_AREA_WORDS words: an option's
    data is at most 255 octets, 10 of them the IOAM and trace headers (RFC 9486, RFC 9197)."""
    assert codes.IOAM_AREA_WORDS == (255 - 10) // 4


def test_report_node_count_magic_is_exact() -> None:
    """IfitReport's NodeCount = (filled * ceil(2^16 / NodeLen)) >> 16 (its node_count table)
    equals filled // NodeLen for every filled word count and NodeLen a usable trace can have."""
    for node_len in range(1, codes.IOAM_RECORD_WORDS + 1):
        m = -(-(1 << 16) // node_len)
        for filled in range(codes.IOAM_AREA_WORDS + 1):
            assert (filled * m) >> 16 == filled // node_len


def test_transit_and_tail_take_any_trace_type() -> None:
    """A transit or tail stamps with the packet's trace type: its own setting is no limit."""
    for ifit in (
        {"role": "transit", "trace_type": 0x896208, "max_nodes": 16},
        {"role": "tail", "trace_type": 0x800FFC, "collector": {"address": "fc00:99::1"}},
    ):
        assert check_limits(_node({"ifit": ifit})) == []  # type: ignore[arg-type]
