"""Optional kernel features ICPN uses, each found by trying it once in a throwaway namespace.

Machines of one kind have run Linux both with and without seg6, netem, fq_codel, VRF and ioam6
(`/proc/config.gz` tells), so nothing assumes either way: a feature is present when the command
that needs it works. Probed at most once per process; `missing(name)` is the one-line reason a
test or a command prints when it cannot use the feature.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class KernelFeature:
    name: str
    option: str  # the kernel configuration option that provides it
    use: str  # what ICPN uses it for
    probe: str  # shell commands that succeed only when the feature is there (lo is up)


FEATURES: dict[str, KernelFeature] = {
    f.name: f
    for f in (
        KernelFeature(
            "seg6",
            "CONFIG_IPV6_SEG6_LWTUNNEL",
            "the kernel seg6 oracle",
            "ip -6 route add fc00:1::/64 encap seg6 mode encap segs fc00::a dev lo"
            " && ip -6 route add fc00::1/128 encap seg6local action End dev lo",
        ),
        KernelFeature(
            "vrf",
            "CONFIG_NET_VRF",
            "End.DT4/DT46 on the kernel oracle",
            "ip link add v type vrf table 10",
        ),
        KernelFeature(
            "netem",
            "CONFIG_NET_SCH_NETEM",
            "netem as a link element",
            "tc qdisc add dev lo root netem delay 1ms",
        ),
        KernelFeature(
            "fq_codel",
            "CONFIG_NET_SCH_FQ_CODEL",
            "fq_codel queues",
            "tc qdisc add dev lo root fq_codel",
        ),
        KernelFeature(
            "ioam6",
            "CONFIG_IPV6_IOAM6_LWTUNNEL",
            "the kernel's IOAM encapsulation as an outside oracle",
            "ip -6 route add fc00:2::/64 encap ioam6 trace prealloc type 0x800000 ns 1 size 12"
            " dev lo",
        ),
        KernelFeature(
            "mirred",
            "CONFIG_NET_ACT_MIRRED",
            "redirecting a link's frames into netem",
            "tc qdisc add dev lo clsact && tc filter add dev lo ingress protocol all"
            " u32 match u32 0 0 action mirred egress redirect dev lo",
        ),
    )
}


def _try(feature: KernelFeature) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    script = f"ip link set lo up && {feature.probe}"
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], capture_output=True, timeout=20, check=False
    )
    return proc.returncode == 0


@functools.cache
def present(name: str) -> bool:
    """Whether the running kernel has the feature (False without root: nothing can be tried)."""
    return _try(FEATURES[name])


def missing(name: str) -> str | None:
    """None when the feature is there, else one line naming what is missing."""
    if os.geteuid() != 0:
        return f"needs root to use the kernel's {name}"
    if present(name):
        return None
    f = FEATURES[name]
    return f"kernel lacks {f.option} ({name}: {f.use})"


def summary() -> str:
    """One line: every optional kernel feature, present or not."""
    if os.geteuid() != 0:
        return "kernel features: not probed (needs root)"
    parts = [n if present(n) else f"no {n} ({FEATURES[n].option})" for n in FEATURES]
    return f"kernel {os.uname().release}: " + ", ".join(parts)
