"""What the running kernel's seg6 / seg6local can do, found by trying it once.

The probe runs in a throwaway anonymous network namespace (nothing is named, nothing is left
behind): it creates a veth pair and tries one route per capability with `ip -force -batch`, which
reports the lines that failed.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from pyctl.errors import ICPNError
from pyctl.netns import run_isolated

# One line per capability, in this order; run with `ip -6 -force -batch -`.
_PROBES: tuple[tuple[str, str], ...] = (
    ("_setup", "link add icpnp0 type veth peer name icpnp1"),
    ("_setup", "link set icpnp0 up"),
    ("seg6local", "route add fc00::1/128 encap seg6local action End dev icpnp0"),
    ("encap", "route add fc00:1::/64 encap seg6 mode encap segs fc00::a,fc00::b dev icpnp0"),
    ("encap_red", "route add fc00:2::/64 encap seg6 mode encap.red segs fc00::a dev icpnp0"),
    ("end_x", "route add fc00::2/128 encap seg6local action End.X nh6 fe80::1 dev icpnp0"),
    ("dt6", "route add fc00::3/128 encap seg6local action End.DT6 table 100 dev icpnp0"),
    ("dx6", "route add fc00::4/128 encap seg6local action End.DX6 nh6 fe80::1 dev icpnp0"),
    ("dx4", "route add fc00::5/128 encap seg6local action End.DX4 nh4 10.0.0.1 dev icpnp0"),
    ("psp_end", "route add fc00::6/128 encap seg6local action End flavors psp dev icpnp0"),
    (
        "psp_end_x",
        "route add fc00::7/128 encap seg6local action End.X nh6 fe80::1 flavors psp dev icpnp0",
    ),
    (
        "next_csid_end",
        "route add fc00::8/128 encap seg6local action End flavors next-csid lblen 32 nflen 16 "
        "dev icpnp0",
    ),
    (
        "next_csid_end_x",
        "route add fc00::9/128 encap seg6local action End.X nh6 fe80::1 flavors next-csid "
        "lblen 32 nflen 16 dev icpnp0",
    ),
    ("vrf", "link add icpnpv type vrf table 101"),
    ("dt4", "route add fc00::a/128 encap seg6local action End.DT4 vrftable 101 dev icpnp0"),
    ("dt46", "route add fc00::b/128 encap seg6local action End.DT46 vrftable 101 dev icpnp0"),
)


@dataclass(frozen=True)
class KernelCaps:
    """Capabilities of this kernel (and iproute2) that the kernel data plane relies on."""

    seg6local: bool = False
    encap: bool = False
    encap_red: bool = False
    end_x: bool = False
    dt6: bool = False
    dx6: bool = False
    dx4: bool = False
    psp_end: bool = False
    psp_end_x: bool = False
    next_csid_end: bool = False
    next_csid_end_x: bool = False
    vrf: bool = False
    dt4: bool = False
    dt46: bool = False
    problem: str | None = None  # why the plane cannot run at all (None when it can)


def _run_probe() -> KernelCaps:
    script = "\n".join(line for _, line in _PROBES) + "\n"
    proc = subprocess.run(
        ["ip", "-6", "-force", "-batch", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    failed = {int(n) for n in re.findall(r"Command failed -:(\d+)", proc.stderr)}
    ok = {name: (i + 1) not in failed for i, (name, _) in enumerate(_PROBES)}
    if not all(ok[name] for name, _ in _PROBES if name == "_setup"):
        return KernelCaps(problem=f"cannot create a veth pair: {proc.stderr.strip()[:200]}")
    caps = {name: value for name, value in ok.items() if name != "_setup"}
    problem = None
    if not caps["seg6local"]:
        problem = "kernel has no seg6local (CONFIG_IPV6_SEG6_LWTUNNEL)"
    elif not caps["encap"]:
        problem = "kernel has no seg6 encapsulation (CONFIG_IPV6_SEG6_LWTUNNEL)"
    return KernelCaps(problem=problem, **caps)


@functools.cache
def probe() -> KernelCaps:
    """The kernel's capabilities, probed once per process."""
    if os.geteuid() != 0:
        return KernelCaps(problem="needs root (CAP_NET_ADMIN) for network namespaces")
    if shutil.which("ip") is None:
        return KernelCaps(problem="the `ip` command (iproute2) is not installed")
    try:
        return run_isolated(_run_probe)
    except (ICPNError, OSError) as exc:
        return KernelCaps(problem=f"cannot probe seg6 in a scratch namespace: {exc}")
