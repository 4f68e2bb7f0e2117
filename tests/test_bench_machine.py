"""bench/machine.py: the machine line every benchmark prints first and its PASS/MISS lines."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import machine


def test_the_machine_line_names_cpu_cores_and_kernel() -> None:
    line = machine.machine_line()
    # read here independently of machine._cpuinfo: the first "model name" line of /proc/cpuinfo
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        None,
    )
    if model is not None:
        assert f"machine: {model} (" in line
    assert f" {os.cpu_count()} cores," in line
    assert f"Linux {platform.release()};" in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("ratio", "limit", "at_most", "verdict"),
    [
        (2.5, 3.0, True, "PASS"),
        (3.5, 3.0, True, "MISS"),
        (2.5, 2.0, False, "PASS"),
        (1.5, 2.0, False, "MISS"),
        (None, 2.0, False, "MISS"),
    ],
)
def test_a_target_line_says_ratio_limit_and_verdict(
    capsys: pytest.CaptureFixture[str],
    ratio: float | None,
    limit: float,
    at_most: bool,
    verdict: str,
) -> None:
    assert machine.target("t", ratio, limit, at_most, "the floor") is (verdict == "PASS")
    out = capsys.readouterr().out
    assert out.startswith("target t: ") and out.rstrip().endswith(f": {verdict}")
    assert f"{'<=' if at_most else '>='} {limit:.2f}x" in out


@pytest.mark.parametrize(
    ("args", "line"),
    [
        # the FIB is 4096 entries (p4/icpn.p4 table fib) and the bench node has 2 routes
        (["--entries", "8000"], "--entries 8000: 1..4094, the FIB's room"),
        (["--rounds", "0"], "--rounds 0: at least 1"),
        (["--burst", "-5"], "--burst -5: at least 1"),
    ],
)
def test_bmv2_bench_refuses_bad_sizes_in_one_line(args: list[str], line: str) -> None:
    """Before anything starts: a FIB too small for --entries failed mid-run with a traceback."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / "bmv2.py"
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"bmv2.py: error: {line}"
