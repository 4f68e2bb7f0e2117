"""The ICPN items of a frame read two ways, for the Wireshark tests: what ICPN's scapy layers
(pyctl/packets, the project's reference dissection) read, and what tshark with
pyctl/wireshark/icpn.lua shows in its PDML; and running tshark over a pcap."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scapy.data import DLT_EN10MB
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapWriter

from pyctl import constants as C
from pyctl.packets import SRHTLVAPN, TRACE_TYPE_DEFAULT, AltMarkOption, APNOption, IFITReport

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
