"""What every benchmark prints: first the machine it ran on, then each speed target as a ratio
to a floor measured on that machine in the same run, PASS or MISS.

Absolute figures did not carry over between two VMs of the same kind (the same code ran End +
IFIT in 64-71 ns on one and 231-264 ns on another), so a target names its floor and holds the
ratio; the machine line says what the figures came from.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

VULNS = Path("/sys/devices/system/cpu/vulnerabilities")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _mitigation(name: str) -> str:
    try:
        return (VULNS / name).read_text().strip()
    except OSError:
        return "?"


def machine_line() -> str:
    """One line: CPU model (family/model/stepping, microcode: a VM may show only "AMD EPYC"),
    cores, clock, kernel, the SRSO and Spectre v2 mitigations (every BPF return and helper call
    goes through them: docs/ebpf-performance.md) and the load (the machine may be shared)."""
    cpu = _cpuinfo()
    model = cpu.get("model name", platform.processor() or "?")
    ids = "/".join(cpu.get(k, "?") for k in ("cpu family", "model", "stepping"))
    mhz = cpu.get("cpu MHz", "?").split(".")[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {model} (family/model/stepping {ids}, microcode {cpu.get('microcode', '?')}),"
        f" {os.cpu_count()} cores, {mhz} MHz; Linux {platform.release()};"
        f" SRSO: {_mitigation('spec_rstack_overflow')};"
        f" Spectre v2: {_mitigation('spectre_v2').split(';')[0]}; load {load:.2f}"
    )


def proc_cpu_s(pid: int) -> float:
    """CPU seconds process `pid` has used so far, all its threads (utime + stime of
    /proc/PID/stat; the fields are counted after the command name, which may hold spaces)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds spent not idle by all CPUs (the kernel's softirq work included)."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    return (sum(vals[:8]) - idle) / CLK_TCK


def print_machine() -> None:
    print(machine_line(), flush=True)


def target(name: str, ratio: float | None, limit: float, at_most: bool, floor: str) -> bool:
    """Print `target NAME: RATIO (<= or >= LIMIT), FLOOR: PASS|MISS`; whether it passed.
    `ratio` None: the figure could not be measured (a MISS, said so)."""
    sense = "<=" if at_most else ">="
    if ratio is None:
        print(f"target {name}: not measured ({sense} {limit:.2f}x {floor}): MISS", flush=True)
        return False
    ok = ratio <= limit if at_most else ratio >= limit
    print(
        f"target {name}: {ratio:.2f}x {floor} ({sense} {limit:.2f}x): {'PASS' if ok else 'MISS'}",
        flush=True,
    )
    return ok


def skipped(name: str, reason: str) -> None:
    print(f"target {name}: skipped ({reason})", flush=True)
