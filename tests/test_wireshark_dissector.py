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

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from wireshark_frames import _extra_frames, _report_frames, _vector_frames
from wireshark_records import BLOCK, _need_tshark, _pdml, _write_pcap, scapy_records, tshark_records

from pyctl import constants as C
from pyctl.wireshark import DISSECTOR, constants_block, lua_constants_block


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
