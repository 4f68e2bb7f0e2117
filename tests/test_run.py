"""`icpn run` end to end on a real Mininet network: report, plots, nothing left behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = {line.split(": ")[1].split("@")[0] for line in out.splitlines()}
    return {n for n in names if re.match(r"ic[0-9a-f]{3}", n)}  # what emulations create


def test_run_minimal_writes_a_report_and_cleans_up(tmp_path: Path) -> None:
    before = _root_links()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyctl.cli",
            "run",
            str(TOPOS / "minimal.yaml"),
            "--seconds",
            "2",
            "--dataplane",
            "reference",
            "--no-cli",
            "--runs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("icpn run: minimal: data planes: reference")
    (run_dir,) = tmp_path.iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    single, multi = report["phases"]
    assert [p["name"] for p in report["phases"]] == ["single-path", "multi-path"]
    (flow,) = multi["flows"]
    assert flow["received_mbit"] > 0.8 * flow["sent_mbit"] > 0  # delivered across SRv6
    (trace,) = report["ifit"]
    assert trace["path"] == ["pe1", "pe2"] and trace["delay_us"]["count"] > 10
    assert (run_dir / "utilisation.png").stat().st_size > 1000
    assert "mean path utilisation" in proc.stdout
    # minimal.yaml's pe1-pe2 link delays 1 ms: the IFIT hop pe1 -> pe2 measures it. Its fastest
    # packet crossed an empty queue: at least the 1 ms, plus the Python software switches'
    # processing (they stamp when they get to a frame: a few ms at most here); without the
    # element's delay it would be under 1 ms. The element counted the frames it carried.
    links = {r["link"]: r for r in report["links"]}
    backbone = links["pe1-pe2"]
    assert backbone["configured"]["delay_ms"] == 1.0 and backbone["element"] == "icpn_linkd"
    assert 1.0 <= backbone["measured"]["delay_ms"] < 6.0, backbone
    assert backbone["measured"]["a2b"]["frames"] > 0
    assert links["ha-pe1"]["measured"]["delay_ms"] is None  # no IFIT node at a host
    assert "IFIT min" in proc.stdout
    # every run leaves the frozen view (no --web: nothing was served), self-contained
    html = (run_dir / "report.html").read_text()
    assert '"pe1"' in html
    # nothing fetched from elsewhere (the SVG namespace URI is a name, not a resource)
    assert not re.search(r"(src|href)=[\"']?https?:", html) and "@import" not in html
    assert "live view:" not in proc.stdout
    assert _root_links() == before
    assert "mnexec" not in subprocess.run(["ps", "-e"], capture_output=True, text=True).stdout


def test_run_a_mixed_bmv2_ebpf_network(tmp_path: Path) -> None:
    """eBPF edges and a BMv2 core from one plan behave as one network (needs BMv2)."""
    import pytest

    from pyctl.targets.bmv2 import BMv2DataPlane

    reason = BMv2DataPlane.unavailable()
    if reason is not None:
        pytest.skip(f"bmv2: {reason}")
    argv = [sys.executable, "-m", "pyctl.cli", "run", str(TOPOS / "mixed.yaml"), "--seconds", "2"]
    argv += ["--no-cli", "--runs", str(tmp_path)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    assert "core bmv2" in proc.stdout.splitlines()[0]
    (run_dir,) = tmp_path.iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    (flow,) = report["phases"][-1]["flows"]
    assert flow["received_mbit"] > 0.8 * flow["sent_mbit"] > 0
    (trace,) = report["ifit"]
    assert trace["path"] == ["pe1", "core", "pe2"]
