"""The `icpn` command line as a user runs it: real pcaps, real node files, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from pyctl.cli import main
from pyctl.errors import ConfigError
from pyctl.packets import IFITReport

ROOT = Path(__file__).resolve().parent.parent
HEADEND = ROOT / "topologies" / "nodes" / "headend.yaml"


def _packet(dst: str, dport: int = 4791) -> Ether:
    return (
        Ether(src="02:00:00:00:0a:01", dst="02:00:00:01:00:01")
        / IPv6(src="2001:db8:a::1", dst=dst)
        / UDP(sport=1000, dport=dport)
        / Raw(b"x" * 32)
    )


def test_packet_pushes_a_pcap_through_a_headend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin, pout = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(pin), [_packet("2001:db8:b::1"), _packet("2001:db8:ff::1")])
    rc = main(
        ["packet", "--dataplane", "reference", "--node", str(HEADEND), str(pin), "-o", str(pout)]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert "port 2:" in out[0] and "SRH[SL=1" in out[0] and "APN=0x10002" in out[0]
    assert "drop (no-route)" in out[1]
    (enc,) = rdpcap(str(pout))
    srh = enc[IPv6ExtHdrSegmentRouting]
    assert [str(a) for a in srh.addresses] == ["fc00:3::d6", "fc00:2::e"]
    assert enc[IPv6].dst == "fc00:2::e" and enc[IPv6].src == "fc00:1::1"


def test_demo_traces_the_path_on_the_reference_plane(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dataplane", "reference"]) == 0
    out = capsys.readouterr().out
    assert "IFIT report: flow 42, 3 hops, path 1 -> 2 -> 3" in out
    assert "-> host B: IPv6 2001:db8:a::1 > 2001:db8:b::1" in out


def test_dissect_shows_layers_and_problems(capsys: pytest.CaptureFixture[str]) -> None:
    from pyctl.model import PacketContext, load_node
    from pyctl.targets.reference import ReferenceDataPlane

    # Take a real report from the demo chain's egress and dissect its bytes.
    dp = ReferenceDataPlane()
    dp.configure(load_node(HEADEND))
    res = dp.process(bytes(_packet("2001:db8:b::1")), PacketContext(in_port=1))
    assert main(["dissect", res.outputs[0].frame.hex()]) == 0
    out = capsys.readouterr().out
    assert "IOAM Trace Option" in out, out[:3000]
    assert "Segment Routing" in out
    bad = bytearray(res.outputs[0].frame)
    bad[19] = 0xFF  # IPv6 payload length overruns the frame
    assert main(["dissect", bytes(bad).hex()]) == 1
    assert "problem:" in capsys.readouterr().out
    assert IFITReport  # the layer is importable for users of the README example


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["packet", "--node", "/nonexistent.yaml", "x.pcap"], "/nonexistent.yaml: cannot read"),
        (["packet", "--node", str(HEADEND), "/nonexistent.pcap"], "cannot read pcap"),
        (
            ["packet", "--node", str(HEADEND), "--in-port", "9", "x.pcap"],
            "--in-port: 9 is not a port",
        ),
        (["packet", "--dataplane", "nope", "--node", str(HEADEND), "x.pcap"], "unknown data plane"),
        (["dissect", "zz-not-hex"], "neither a pcap file nor hex"),
        (["vectors", "--dir", "/nonexistent"], "is not a directory"),
    ],
)
def test_errors_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    wrpcap(str(pcap), [_packet("2001:db8:b::1")])
    argv = [str(pcap) if a == "x.pcap" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("icpn: error: ") and message in err[0]


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pyctl.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in (
        "packet",
        "vectors",
        "dissect",
        "demo",
        "run",
        "experiment",
        "collector",
        "sched",
        "bench",
    ):
        assert cmd in out


def _icpn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`icpn ...` in a process of its own, as a user runs it, on this checkout."""
    return subprocess.run(
        [sys.executable, "-m", "pyctl.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("--seconds", "0", "0.0"),
        ("--seconds", "nan", "nan"),
        ("--seconds", "7200", "7200.0"),
        ("--scale", "0", "0.0"),
        ("--scale", "-1", "-1.0"),
        ("--scale", "1000", "1000.0"),
    ],
)
def test_run_refuses_an_out_of_range_option_in_one_line(
    option: str, value: str, shown: str, tmp_path: Path
) -> None:
    # The bounds are icpn experiment's ([1, 3600] s, scale [0.0001, 100]); the value is shown as
    # argparse's float() made it. Checked before anything is built, so no root is needed.
    topo = ROOT / "topologies" / "minimal.yaml"
    res = _icpn(["run", str(topo), "--no-cli", "--runs", str(tmp_path), f"{option}={value}"])
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"icpn: error: {option}: {shown} is out of range "
        + ("[1, 3600]" if option == "--seconds" else "[0.0001, 100]")
    ]
    assert list(tmp_path.iterdir()) == []  # no run directory was started


def test_experiment_and_run_share_the_bounds() -> None:
    from pyctl.experiments.options import Options

    with pytest.raises(ConfigError, match=r"^--scale: 200.0 is out of range"):
        Options(scale=200.0)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="icpn run needs root before it reaches Mininet")
def test_run_without_mininet_says_so_in_one_line(tmp_path: Path) -> None:
    # A `mininet` package that fails to import, first on the path, stands in for a machine
    # without Mininet.
    fake = tmp_path / "fake" / "mininet"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named mininet (fake)')\n")
    topo = ROOT / "topologies" / "minimal.yaml"
    res = _icpn(
        ["run", str(topo), "--no-cli", "--dataplane", "reference", "--runs", str(tmp_path / "r")],
        env={"PYTHONPATH": f"{tmp_path / 'fake'}:{ROOT}"},
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("icpn: error: Mininet does not import"), lines
    assert "apt" in lines[0] or "Debian" in lines[0]
