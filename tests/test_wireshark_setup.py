"""The Wireshark dissector's set-up: `icpn wireshark --install` puts it where tshark loads it,
and its preferences (APN option and SRH TLV types, IFIT report port, trace type) make it
recognise carriers the control layer configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting
from wireshark_frames import ROOT, _eth
from wireshark_records import _need_tshark, _pdml, _write_pcap, scapy_records, tshark_records

from pyctl.packets import (
    SRHTLVAPN,
    APNOption,
    IFITReport,
    IOAMNodeRecord,
    register_apn_option_type,
    register_ifit_report_port,
    register_srh_apn_tlv_type,
    unregister_apn_option_type,
    unregister_ifit_report_port,
    unregister_srh_apn_tlv_type,
)
from pyctl.wireshark import DISSECTOR


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
