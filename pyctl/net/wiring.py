"""The kernel side of an emulation's nodes: veth pairs made in their namespaces, interface
settings made in-process, shell commands in a node, and what a crashed run left behind.

`cleanup_stale()` removes what runs whose owner process is gone left: the registry under
/run/icpn records each run's owner PID, node shells and name prefix (pyctl.net.emulation).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyctl import ifconf
from pyctl.controller.plan import HostPlan
from pyctl.errors import ICPNError
from pyctl.netns import alive
from pyctl.targets.ebpf import attach as att

REGISTRY = Path("/run/icpn")
IFA_F_NODAD = 0x02
NUD_PERMANENT = 0x80


class EmulationError(ICPNError):
    """The network could not be built or torn down; the message names the step."""


@dataclass
class Wire:
    """The two ends of a veth pair, as Mininet's Link holds them (`intf.link.intf1`)."""

    intf1: Any
    intf2: Any


def in_place(intf: str, node: Any) -> None:
    """Mininet's moveIntfFn for an interface made in its namespace already."""


def netns_fd(pid: int) -> int:
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise EmulationError(f"the namespace of pid {pid}: {e.strerror}") from None


def make_veth(
    ipr: IPRoute, end1: tuple[str, int, str | None], end2: tuple[str, int, str | None], mtu: int
) -> None:
    """A veth pair with each end (name, namespace fd, MAC or None) made in its namespace."""
    (name1, fd1, mac1), (name2, fd2, mac2) = end1, end2
    peer: dict[str, Any] = {"ifname": name2, "net_ns_fd": fd2, "mtu": mtu}
    extra: dict[str, Any] = {"address": mac1} if mac1 else {}
    if mac2:
        peer["address"] = mac2
    try:
        ipr.link("add", ifname=name1, kind="veth", net_ns_fd=fd1, mtu=mtu, peer=peer, **extra)
    except NetlinkError as e:
        raise EmulationError(f"veth {name1} <-> {name2}: {e.args[-1]}") from None


def naming(node: str, fn: Callable[[], None]) -> Callable[[], None]:
    """fn, its ICPNError prefixed with the node's name."""

    def call() -> None:
        try:
            fn()
        except ICPNError as e:
            raise EmulationError(f"node {node}: {e}") from None

    return call


def configure_host(h: HostPlan, intf: str, mtu: int) -> None:
    """In a host's namespace: IPv6 on without DAD, router solicitations or RAs, its address,
    the gateway's MAC for fe80::1 and the default route through it, no checksum offload."""
    for key, value in (
        ("net.ipv6.conf.all.disable_ipv6", "0"),
        ("net.ipv6.conf.default.disable_ipv6", "0"),
        (f"net.ipv6.conf.{intf}.disable_ipv6", "0"),
        (f"net.ipv6.conf.{intf}.accept_dad", "0"),
        ("net.ipv6.conf.all.accept_ra", "0"),
        (f"net.ipv6.conf.{intf}.router_solicitations", "0"),
    ):
        ifconf.sysctl(key, value)
    with IPRoute() as ipr:
        index = att.ifindex_of(intf, ipr)
        ifconf.set_links({"lo": {"state": "up"}, intf: {"mtu": mtu, "state": "up"}}, ipr)
        try:
            ipr.addr(
                "add", index=index, address=str(h.address), prefixlen=128, IFA_FLAGS=IFA_F_NODAD
            )
            ipr.neigh("replace", dst="fe80::1", lladdr=h.gateway_mac, ifindex=index,
                      state=NUD_PERMANENT, family=socket.AF_INET6)  # fmt: skip
            ipr.route("replace", dst="::/0", gateway="fe80::1", oif=index, family=socket.AF_INET6)
        except NetlinkError as e:
            raise ICPNError(f"{intf}: address {h.address} or its routes: {e.args[-1]}") from None
    ifconf.set_offloads(intf, ["tx"])


def configure_switch(intfs: dict[str, int]) -> None:
    """In a switch's namespace: IPv6 on, each port up at its MTU, no checksum offload."""
    ifconf.sysctl("net.ipv6.conf.all.disable_ipv6", "0")
    ifconf.set_links({"lo": {"state": "up"}})
    ifconf.set_links({intf: {"mtu": mtu, "state": "up"} for intf, mtu in intfs.items()})
    for intf in intfs:
        ifconf.set_offloads(intf, ["tx"])


def shell_status(node: Any, cmd: str) -> tuple[int, str]:
    """A shell command in a node: (exit status, output)."""
    out = node.cmd(f"{cmd}; echo __rc=$?")
    body, _, rc = out.rpartition("__rc=")
    return (int(rc) if rc.strip().isdigit() else 1), body


def sh(node: Any, *cmds: str) -> None:
    """Run shell commands in a node; raise naming the command when one fails."""
    for cmd in cmds:
        rc, body = shell_status(node, cmd)
        if rc != 0:
            raise EmulationError(f"{node.name}: `{cmd}` failed: {body.strip()}")


def delete_root_links(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False)
    gone = []
    for line in out.stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1:
            name = parts[1].split("@")[0]
            if name.startswith(prefix):
                subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
                gone.append(name)
    return gone


def cleanup_stale() -> list[str]:
    """Remove what runs whose owner process is gone left behind: their processes and links."""
    if not REGISTRY.is_dir():
        return []
    cleaned = []
    for f in REGISTRY.glob("ic*.json"):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if alive(int(data.get("owner", 0))):
            continue
        for pid in data.get("pids", []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        cleaned += delete_root_links(str(data.get("prefix", "ic-none")))
        f.unlink(missing_ok=True)
        cleaned.append(f.stem)
    return cleaned
