"""Wireshark understands ICPN: tshark with pyctl/wireshark/icpn.lua, held to ICPN's scapy layers.

Every frame of the conformance vectors (inputs and expected outputs), IFIT reports built with
the `IFITReport` layer (trace and counter records, IPv4 and IPv6 inner tuples) and a few frames
for what the vectors lack (64/128-bit APN-IDs, every parameter bit, Destination-option and SRH
TLV carriers, a bitmap that disagrees with the length) go into one pcap, which one tshark run
dissects to PDML. For every frame the ICPN items tshark shows must equal what ICPN's scapy
layers (pyctl/packets, the project's reference dissection, written independently of the Lua)
read from the same bytes; the NEXT-CSID split is derived from the destination address with
`ipaddress`. The dissector must add no Malformed item (a second run without it gives the frames
Wireshark itself finds malformed: the deliberately broken validation vectors) and no Lua error.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scapy.data import DLT_EN10MB
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import RawPcapWriter

from pyctl import constants as C
from pyctl.conformance import load_vectors
from pyctl.packets import (
    APN_ID_TYPE_64,
    APN_ID_TYPE_128,
    SRHTLVAPN,
    TRACE_TYPE_DEFAULT,
    AltMarkOption,
    APNOption,
    IFITReport,
    IOAMNodeRecord,
    apn_id_from_groups,
    ioam_trace_option,
    register_apn_option_type,
    register_ifit_report_port,
    register_srh_apn_tlv_type,
    unregister_apn_option_type,
    unregister_ifit_report_port,
    unregister_srh_apn_tlv_type,
)
from pyctl.wireshark import DISSECTOR, constants_block, lua_constants_block

ROOT = Path(__file__).resolve().parent.parent
TSHARK = shutil.which("tshark")
BLOCK = "fcbb:bb00::/32"  # the vectors' uSID locator block (tests/vectors/srv6/next-csid-*.yaml)
PARAM_NAMES = {0: "bandwidth", 1: "latency", 2: "jitter", 3: "loss"}


def _need_tshark() -> str:
    if TSHARK is None:
        pytest.fail(
            "tshark is not installed: `sudo make deps` installs it (or: apt-get install -y tshark)",
            pytrace=False,
        )
    return TSHARK


def _eth(pkt: Packet) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt)


def _extra_frames() -> list[bytes]:
    """Frames for what the vectors do not carry: other APN widths, carriers, every field."""
    inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::2") / UDP(sport=1, dport=2)
    apn64 = APNOption(
        id_type=APN_ID_TYPE_64,
        flags=0xA5,
        para_type=0xF000,
        apn_id=apn_id_from_groups(0xDEADBEEF, 0x1234, APN_ID_TYPE_64) | 0x5678,
        params=[100_000, 250, 30, 1_000],
    )
    # Bits 0 and 5: a bandwidth and a parameter of an unknown bit (still 32 bits, ignored).
    apn128 = APNOption(
        id_type=APN_ID_TYPE_128,
        para_type=0x8400,
        apn_id=apn_id_from_groups((1 << 64) - 2, 0xCAFE0001, APN_ID_TYPE_128) | 0xFFFF0000,
        params=[10, 0xFFFFFFFF],
    )
    # The bitmap announces two parameters, the length carries one (validate_apn's mismatch).
    short = APNOption(para_type=0xC000, apn_id=0x00070001, params=[5])
    frames = [
        _eth(
            IPv6(src="fc00:a::1", dst="fc00:b::1")
            / IPv6ExtHdrHopByHop(options=[apn64, AltMarkOption(flowmon_id=0xFFFFF, L=1, D=1)])
            / inner
        ),
        _eth(IPv6(src="fc00:a::1", dst="fc00:b::1") / IPv6ExtHdrDestOpt(options=[apn128]) / inner),
        _eth(IPv6(src="fc00:a::1", dst="fc00:b::1") / IPv6ExtHdrHopByHop(options=[short]) / inner),
        _eth(
            IPv6(src="fc00:a::1", dst="fcbb:bb00:100:200:300::")
            / IPv6ExtHdrSegmentRouting(
                addresses=["fc00:3::", "fcbb:bb00:100:200:300::"],
                segleft=1,
                tlv_objects=[SRHTLVAPN(apn_id=0xABCD0042, para_type=0x2000, params=[77])],
            )
            / inner
        ),
    ]
    # A non-first fragment whose data happens to look like a Hop-by-Hop header with an APN
    # option: it is fragment data, not a header (scapy leaves it Raw).
    hbh = bytes(IPv6ExtHdrHopByHop(nh=59, options=[APNOption(apn_id=1)]))
    frames.append(
        _eth(IPv6(src="fc00:a::1", dst="fc00:b::1") / IPv6ExtHdrFragment(nh=0, offset=8) / hbh)
    )
    return frames + _report_frames()


def _report_frames() -> list[bytes]:
    """IFIT reports as a tail sends them (sport = dport = collector port, ebpf/include/ifit.h)."""
    trace = ioam_trace_option(max_nodes=4)
    for node in (11, 12, 13):
        trace.stamp(
            IOAMNodeRecord(
                hop_limit=64 - node,
                node_id=node,
                ingress_if=node % 3,
                egress_if=node % 5,
                ts_sec=1_700_000_000 + node,
                ts_subsec=999_000 + node,
                queue_depth=node * 7,
            )
        )
    udp = UDP(sport=C.IFIT_REPORT_PORT, dport=C.IFIT_REPORT_PORT)
    v6 = IPv6(src="fc00:c::1", dst="fc00:99::1") / udp
    head = dict(flowmon_id=0xABCDE, L=1, D=0, tail_node_id=0x0A0B0C0D, ts_sec=7, ts_subsec=8)
    reports = [
        # The whole pre-allocated area (free space first), IPv6 inner tuple.
        v6
        / IFITReport(
            node_count=3,
            **head,
            proto=6,
            sport=40000,
            dport=443,
            src="2001:db8:1::1",
            dst="2001:db8:2::2",
            data=bytes(trace.data),
        ),
        # Only the filled part, IPv4 inner tuple (mapped), carried over IPv4 to the collector.
        IP(src="10.0.0.1", dst="10.0.0.9")
        / udp
        / IFITReport(
            node_count=3,
            flowmon_id=1,
            L=0,
            D=1,
            src="10.1.2.3",
            dst="192.0.2.200",
            sport=5000,
            dport=5001,
            data=trace.filled(),
        ),
        # Counter records: one with 64-bit values that use the top bit.
        v6
        / IFITReport(
            flags=0x8001,  # the counter bit and one other
            **head,
            src="10.0.0.1",
            dst="10.0.0.2",
            packets=12345,
            bytes=(1 << 63) + 5,
        ),
        v6 / IFITReport(flags=0x8000, flowmon_id=2, packets=0, bytes=0),
    ]
    return [_eth(r) for r in reports]


def _vector_frames() -> list[bytes]:
    frames = []
    for vector in load_vectors(ROOT / "tests" / "vectors"):
        for step in vector.steps:
            frames.append(step.frame)
            frames += [out.frame for out in step.expect]
    return frames


# --- what ICPN's scapy layers read --------------------------------------------------------------


def _apn_record(tlv: Any, carrier: int) -> dict[str, Any]:
    bits = [b for b in range(16) if int(tlv.para_type) & (1 << (15 - b))]
    params = []
    for i, value in enumerate(tlv.params):
        bit = bits[i] if i < len(bits) else None
        name = "extra" if bit is None else PARAM_NAMES.get(bit, f"unknown(bit {bit})")
        params.append((name, int(value)))
    width = {1: 4, 2: 8, 3: 16}[int(tlv.id_type)]
    return {
        "kind": "apn",
        "carrier": carrier,
        "id_type": int(tlv.id_type),
        "flags": int(tlv.flags),
        "para_type": int(tlv.para_type),
        "id": int(tlv.apn_id).to_bytes(width, "big").hex(),
        "app": tlv.app_group,
        "user": tlv.user_group,
        "params": params,
    }


def _csid_record(da: str) -> dict[str, Any] | None:
    """NEXT-CSID split of `da` (F3216: 32-bit block, 16-bit C-SIDs up to the first zero one)."""
    net = ipaddress.IPv6Network(BLOCK)
    addr = ipaddress.IPv6Address(da)
    if addr not in net:
        return None
    words = [int(addr) >> (128 - 16 * (i + 1)) & 0xFFFF for i in range(8)]
    rest = []
    for w in words[3:]:
        if w == 0:
            break
        rest.append(w)
    return {"kind": "csid", "block": BLOCK, "active": words[2], "remaining": rest}


# IOAMNodeRecord attribute -> the Lua field (named as Wireshark's IOAM dissector names them).
NODE_FIELDS = {
    "hop_limit": "hlim",
    "node_id": "id",
    "ingress_if": "iif",
    "egress_if": "eif",
    "ts_sec": "tss",
    "ts_subsec": "tsf",
    "transit_delay": "trdelay",
    "namespace_data": "nsdata",
    "queue_depth": "qdepth",
    "checksum_complement": "csum",
    "hop_limit_wide": "hlim_wide",
    "node_id_wide": "id_wide",
    "ingress_if_wide": "iif_wide",
    "egress_if_wide": "eif_wide",
    "namespace_data_wide": "nsdata_wide",
    "buffer_occupancy": "bufoccup",
}


def _report_record(r: IFITReport, trace_type: int) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "ifit",
        "version": int(r.version),
        "node_count": int(r.node_count),
        "flags": int(r.flags),
        "counters": r.is_counter_record,
        "flowmon_id": int(r.flowmon_id),
        "l": int(r.L),
        "d": int(r.D),
        "reserved": int(r.reserved),
        "tail_node_id": int(r.tail_node_id),
        "ts_sec": int(r.ts_sec),
        "ts_subsec": int(r.ts_subsec),
        "family": int(r.family),
        "proto": int(r.proto),
        "sport": int(r.sport),
        "dport": int(r.dport),
        "tuple_reserved": int(r.tuple_reserved),
        "src": r.src_ip,
        "dst": r.dst_ip,
    }
    if r.is_counter_record:
        rec["packets"], rec["bytes"] = int(r.packets), int(r.bytes)
    else:
        rec["nodes"] = [
            {lua: getattr(node, attr) for attr, lua in NODE_FIELDS.items()}
            for node in r.records(trace_type)
        ]
        for node in rec["nodes"]:
            for key in [k for k, v in node.items() if v is None]:
                del node[key]
    return rec


def scapy_records(frame: bytes, trace_type: int = TRACE_TYPE_DEFAULT) -> list[dict[str, Any]]:
    """ICPN items of `frame` in wire order, as ICPN's scapy layers dissect them."""
    out: list[dict[str, Any]] = []
    for layer in Ether(frame).iterpayloads():
        if isinstance(layer, IPv6):
            csid = _csid_record(str(layer.dst))
            if csid is not None:
                out.append(csid)
        elif isinstance(layer, IPv6ExtHdrHopByHop | IPv6ExtHdrDestOpt):
            carrier = C.IPPROTO_HOPOPTS if isinstance(layer, IPv6ExtHdrHopByHop) else 60
            for opt in layer.options:
                if isinstance(opt, APNOption):
                    out.append(_apn_record(opt, carrier))
                elif isinstance(opt, AltMarkOption):
                    out.append(
                        {
                            "kind": "altmark",
                            "flowmon_id": int(opt.flowmon_id),
                            "l": int(opt.L),
                            "d": int(opt.D),
                            "reserved": int(opt.reserved),
                        }
                    )
        elif isinstance(layer, IPv6ExtHdrSegmentRouting):
            for tlv in layer.tlv_objects:
                if isinstance(tlv, SRHTLVAPN):
                    out.append(_apn_record(tlv, C.IPPROTO_ROUTING))
        elif isinstance(layer, IFITReport):
            out.append(_report_record(layer, trace_type))
    return out


# --- what tshark shows --------------------------------------------------------------------------


def _num(show: str) -> int:
    return int(show, 0)


def _walk(elem: ET.Element) -> list[ET.Element]:
    return [e for e in elem.iter("field") if e is not elem]


def _first(elem: ET.Element, name: str) -> str:
    for e in _walk(elem):
        if e.get("name") == name:
            return e.get("show", "")
    raise AssertionError(f"{elem.get('name')} has no {name}")


def _tshark_apn(e: ET.Element) -> dict[str, Any]:
    params: list[tuple[str, int]] = []
    for child in e.findall("field"):
        name = child.get("name", "")
        if name.startswith("icpn.apn.param."):
            kind = name.removeprefix("icpn.apn.param.")
            if kind == "unknown":
                kind = f"unknown(bit {_first(child, 'icpn.apn.param.unknown_bit')})"
            params.append((kind, _num(child.get("show", ""))))
    return {
        "kind": "apn",
        "carrier": _num(_first(e, "icpn.apn.carrier")),
        "id_type": _num(_first(e, "icpn.apn.id_type")),
        "flags": _num(_first(e, "icpn.apn.flags")),
        "para_type": _num(_first(e, "icpn.apn.para_type")),
        "id": _first(e, "icpn.apn.id").replace(":", ""),
        "app": _num(_first(e, "icpn.apn.app_group")),
        "user": _num(_first(e, "icpn.apn.user_group")),
        "params": params,
    }


def _tshark_csid(e: ET.Element) -> dict[str, Any]:
    rest = [_num(c.get("show", "")) for c in _walk(e) if c.get("name") == "icpn.csid.remaining"]
    assert _num(_first(e, "icpn.csid.remaining_count")) == len(rest)
    return {
        "kind": "csid",
        "block": _first(e, "icpn.csid.block"),
        "active": _num(_first(e, "icpn.csid.active")),
        "remaining": rest,
    }


_REPORT_INTS = (
    "version node_count flags flowmon_id l d reserved tail_node_id ts_sec ts_subsec family "
    "proto sport dport tuple_reserved"
).split()


def _tshark_report(p: ET.Element) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": "ifit"}
    for key in _REPORT_INTS:
        rec[key] = _num(_first(p, f"icpn.ifit.{key}"))
    rec["counters"] = _first(p, "icpn.ifit.flags.counters") == "1"
    names = {e.get("name") for e in _walk(p)}
    for side in ("src", "dst"):
        mapped = f"icpn.ifit.{side}_ipv4" in names
        rec[side] = _first(p, f"icpn.ifit.{side}_ipv4" if mapped else f"icpn.ifit.{side}")
    if rec["counters"]:
        rec["packets"] = _num(_first(p, "icpn.ifit.packets"))
        rec["bytes"] = _num(_first(p, "icpn.ifit.bytes"))
    else:
        rec["nodes"] = [
            {
                f.get("name", "").removeprefix("icpn.ifit.node."): _num(f.get("show", ""))
                for f in _walk(n)
            }
            for n in _walk(p)
            if n.get("name") == "icpn.ifit.node"
        ]
    return rec


@dataclass(frozen=True)
class Dissected:
    records: list[dict[str, Any]]
    malformed_elsewhere: bool  # a Malformed item of a dissector other than ICPN's
    lua_errors: list[str]
    experts: list[str]  # ICPN's own expert items (warnings, Malformed group)


def tshark_records(packet: ET.Element) -> Dissected:
    records: list[dict[str, Any]] = []
    experts: list[str] = []
    ours: set[int] = set()
    for proto in packet.findall("proto"):
        name = proto.get("name")
        if name == "icpn":
            for e in proto.findall("field"):
                kind = e.get("name")
                if kind == "icpn.apn":
                    records.append(_tshark_apn(e))
                elif kind == "icpn.altmark":
                    records.append(
                        {
                            "kind": "altmark",
                            **{
                                k: _num(_first(e, f"icpn.altmark.{k}"))
                                for k in ("flowmon_id", "l", "d", "reserved")
                            },
                        }
                    )
                elif kind == "icpn.csid":
                    records.append(_tshark_csid(e))
        elif name == "icpn.ifit":
            records.append(_tshark_report(proto))
        if name in ("icpn", "icpn.ifit"):
            ours |= {id(e) for e in proto.iter()}
            experts += [
                e.get("showname", "") for e in proto.iter("field") if e.get("name") == "_ws.expert"
            ]
    everything = list(packet.iter())
    return Dissected(
        records=records,
        malformed_elsewhere=any(
            e.get("name") == "_ws.malformed" and id(e) not in ours for e in everything
        ),
        lua_errors=[e.get("showname", "") for e in everything if e.get("name") == "_ws.lua.error"],
        experts=experts,
    )


def _pdml(pcap: Path, lua: str | None = None, *prefs: str) -> tuple[list[ET.Element], str]:
    """tshark's PDML of `pcap`, with the dissector `lua` (and `prefs`, name:value) if given."""
    args = [_need_tshark(), "-n", "-r", str(pcap), "-T", "pdml"]
    if lua is not None:
        args += ["-X", f"lua_script:{lua}", "-o", f"icpn.csid_block:{BLOCK}"]
        for pref in prefs:
            args += ["-o", f"icpn.{pref}"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return ET.fromstring(run.stdout).findall("packet"), run.stderr


def _write_pcap(path: Path, frames: list[bytes]) -> None:
    """The frames byte for byte (no scapy rebuild, which could tidy a malformed one up)."""
    with RawPcapWriter(str(path), linktype=DLT_EN10MB) as out:
        for frame in frames:
            out.write(frame)


@dataclass(frozen=True)
class Run:
    frames: list[bytes]
    plain: list[ET.Element]  # without the dissector
    icpn: list[ET.Element]
    stderr: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    _need_tshark()
    frames = _vector_frames() + _extra_frames()
    pcap = tmp_path_factory.mktemp("wireshark") / "icpn.pcap"
    _write_pcap(pcap, frames)
    plain, _ = _pdml(pcap)
    icpn, stderr = _pdml(pcap, str(DISSECTOR))
    assert len(plain) == len(icpn) == len(frames)
    return Run(frames, plain, icpn, stderr)


def test_the_lua_constants_are_pyctl_constants() -> None:
    assert lua_constants_block(DISSECTOR.read_text()) == constants_block(), (
        "icpn.lua's constants differ from pyctl/constants.py: run `python -m pyctl.wireshark`"
    )


def test_tshark_loads_the_dissector_without_errors(run: Run) -> None:
    noise = "Running as user"  # tshark's note when run as root
    errors = [line for line in run.stderr.splitlines() if line.strip() and noise not in line]
    assert errors == []


def test_no_lua_error_and_malformed_only_where_icpn_validator_finds_a_problem(run: Run) -> None:
    from pyctl.packets import validate_packet

    flagged = 0
    for i, (frame, plain, icpn) in enumerate(zip(run.frames, run.plain, run.icpn, strict=True)):
        got = tshark_records(icpn)
        assert got.lua_errors == [], f"frame {i + 1}: {got.lua_errors}"
        # Wireshark's own dissectors flag the deliberately broken validation vectors (and some
        # RoCE payloads); loading the ICPN dissector must not add to those.
        assert not got.malformed_elsewhere or tshark_records(plain).malformed_elsewhere, i + 1
        # ICPN's own expert items (Malformed group included) point at real problems only.
        if got.experts:
            flagged += 1
            assert validate_packet(frame), f"frame {i + 1}: {got.experts}"
        assert not any("Exception" in e for e in got.experts), f"frame {i + 1}: {got.experts}"
    assert flagged >= 2  # the broken vectors and the mismatch frame below are flagged
    # The APN option whose bitmap announces two parameters and carries one (_extra_frames).
    mismatch = run.icpn[len(run.frames) - len(_report_frames()) - 3]
    assert any("room for 1 parameter" in e for e in tshark_records(mismatch).experts)


def test_tshark_shows_what_icpn_scapy_layers_read(run: Run) -> None:
    compared = {"apn": 0, "altmark": 0, "csid": 0, "ifit": 0}
    for i, (frame, packet) in enumerate(zip(run.frames, run.icpn, strict=True)):
        want = scapy_records(frame)
        assert tshark_records(packet).records == want, f"frame {i + 1}"
        for rec in want:
            compared[rec["kind"]] += 1
    # Each kind was really compared (the pcap holds every carrier and record type).
    assert min(compared.values()) >= 4, compared
    carriers = {r["carrier"] for f in run.frames for r in scapy_records(f) if r["kind"] == "apn"}
    assert carriers == {C.IPPROTO_HOPOPTS, C.IPPROTO_DSTOPTS, C.IPPROTO_ROUTING}


def test_icpn_wireshark_install_puts_it_where_tshark_loads_it(tmp_path: Path) -> None:
    tshark = _need_tshark()
    # A HOME of its own: tshark's personal Lua plugin folder follows HOME.
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME",)}
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    icpn = [sys.executable, "-m", "pyctl.cli", "wireshark"]
    path = subprocess.run([*icpn, "--path"], capture_output=True, text=True, env=env, check=True)
    assert Path(path.stdout.strip()) == DISSECTOR and DISSECTOR.is_file()
    before = subprocess.run([tshark, "-G", "protocols"], capture_output=True, text=True, env=env)
    assert "\ticpn\n" not in before.stdout  # not loaded from anywhere else
    inst = subprocess.run([*icpn, "--install"], capture_output=True, text=True, env=env, check=True)
    target = tmp_path / ".local" / "lib" / "wireshark" / "plugins" / "icpn.lua"
    assert str(target) in inst.stdout
    assert target.read_bytes() == DISSECTOR.read_bytes()
    after = subprocess.run([tshark, "-G", "protocols"], capture_output=True, text=True, env=env)
    assert "\ticpn\n" in after.stdout and "\ticpn.ifit\n" in after.stdout


def test_preferences_set_the_apn_types_the_report_port_and_trace_type(tmp_path: Path) -> None:
    # Non-default carriers as the control layer may configure them (SPEC 2, 3): APN option type
    # 0x3E, APN SRH TLV type 130, reports on UDP 6000 whose node data has trace type bits 0 and
    # 8 only (hop limit + node id, short and wide: 12 bytes a node).
    trace_type = 0x808000
    node = IOAMNodeRecord(hop_limit=9, node_id=7, hop_limit_wide=8, node_id_wide=(1 << 56) - 3)
    register_apn_option_type(0x3E)
    register_srh_apn_tlv_type(130)
    register_ifit_report_port(6000)
    try:
        frames = [
            _eth(
                IPv6(src="fc00:a::1", dst="fc00:b::1")
                / IPv6ExtHdrHopByHop(options=[APNOption(otype=0x3E, apn_id=0x00090003)])
                / IPv6ExtHdrSegmentRouting(
                    addresses=["fc00:3::"], tlv_objects=[SRHTLVAPN(type=130, apn_id=0x00040005)]
                )
                / UDP()
            ),
            _eth(
                IPv6(src="fc00:c::1", dst="fc00:99::1")
                / UDP(sport=6000, dport=6000)
                / IFITReport(node_count=1, flowmon_id=9, data=node.pack(trace_type))
            ),
        ]
        want = [scapy_records(f, trace_type) for f in frames]
    finally:
        unregister_apn_option_type(0x3E)
        unregister_srh_apn_tlv_type(130)
        unregister_ifit_report_port(6000)
    assert [r["kind"] for w in want for r in w] == ["apn", "apn", "ifit"]
    # The record as built above, field by field.
    assert want[1][0]["nodes"] == [{"hlim": 9, "id": 7, "hlim_wide": 8, "id_wide": (1 << 56) - 3}]
    pcap = tmp_path / "prefs.pcap"
    _write_pcap(pcap, frames)
    prefs = ["apn_opt_type:62", "apn_tlv_type:130", "ifit_port:6000", "trace_type:0x808000"]
    packets, _ = _pdml(pcap, str(DISSECTOR), *prefs)
    got = [tshark_records(p).records for p in packets]
    assert got == want
    # With the default preferences none of them is recognised.
    packets, _ = _pdml(pcap, str(DISSECTOR))
    assert [tshark_records(p).records for p in packets] == [[], []]


def test_truncated_frames_give_no_lua_error(run: Run, tmp_path: Path) -> None:
    # Every frame that carries ICPN items, cut short at every 5th byte (a capture's snap length,
    # or a broken sender): the dissector must stop at the end of the data, never raise.
    cut = [f[:n] for f in run.frames if scapy_records(f) for n in range(14, len(f), 5)]
    pcap = tmp_path / "cut.pcap"
    _write_pcap(pcap, cut)
    args = [_need_tshark(), "-n", "-r", str(pcap), "-X", f"lua_script:{DISSECTOR}"]
    args += ["-o", f"icpn.csid_block:{BLOCK}", "-V", "-Y", "_ws.lua.error"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(cut) > 1000 and "Lua Error" not in out.stdout, out.stdout[:3000]
