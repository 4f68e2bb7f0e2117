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


def test_a_process_cpu_time_counts_every_thread(tmp_path: Path) -> None:
    # Independent clock: the kernel's CLOCK_PROCESS_CPUTIME_ID (time.process_time) counts the
    # same threads through another interface; /proc counts in ticks, so allow two of them.
    import threading
    import time

    def spin() -> None:
        end = time.process_time() + 0.15
        while time.process_time() < end:
            pass

    helper = threading.Thread(target=spin)
    helper.start()
    helper.join()
    before = time.process_time()
    got = machine.proc_cpu_s(os.getpid())
    after = time.process_time()
    tick = 1 / machine.CLK_TCK
    assert before - 2 * tick <= got <= after + 2 * tick
    assert got >= 0.15 - 2 * tick  # the helper thread's time is in it


def test_a_process_cpu_time_reads_a_command_name_with_a_parenthesis(tmp_path: Path) -> None:
    # /proc/PID/stat's second field is "(comm)" and comm may hold ") " and numbers itself: read
    # from the first ")", this name shifts the fields by seven (utime + stime would be the
    # tty and its foreground group: 0 and -1 without a terminal, a large number with one)
    import shutil
    import subprocess

    odd = tmp_path / "x) 7 7 7 7 7 7 7"  # comm keeps its first 15 bytes
    shutil.copy("/bin/sleep", odd)
    p = subprocess.Popen([str(odd), "5"])
    try:
        assert 0.0 <= machine.proc_cpu_s(p.pid) < 1.0
    finally:
        p.kill()
        p.wait()


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
