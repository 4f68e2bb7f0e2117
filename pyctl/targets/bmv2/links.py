"""Veth pairs between a switch (root namespace) and a namespace of host ends, and raw sockets there.

The switch side of each pair gets a per-run name in the root namespace; the host side lives in a
namespace named ``icpnt-bmv2-<pid>-<n>``, where a raw socket per port sends frames to the switch
and captures what it sends back. IPv6 is disabled on every end before it comes up, so the kernel
puts no frame of its own (router solicitations, MLD) on the links.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pyctl.errors import ICPNError
from pyctl.targets.bmv2 import codes

NETNS_PREFIX = "icpnt-bmv2-"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
CLONE_NEWNET = 0x40000000
MTU = codes.TEST_LINK_MTU  # Linux's largest veth MTU: IPv6 packets of up to 65535 octets

_serial = itertools.count()


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ICPNError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")


def _set_sysctl(path: Path, value: str, netns: str | None = None) -> None:
    if netns is None:
        path.write_text(value)
    else:
        _run(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"])


@dataclass
class VethLinks:
    """The links of one switch: port -> (switch-side name, host-side name)."""

    ports: list[int]
    netns: str = field(default="")
    tag: str = field(default="")
    switch_side: dict[int, str] = field(default_factory=dict)
    host_side: dict[int, str] = field(default_factory=dict)
    created: bool = False

    def __post_init__(self) -> None:
        n = next(_serial)
        if not self.netns:
            self.netns = f"{NETNS_PREFIX}{os.getpid()}-{n}"
        if not self.tag:
            self.tag = f"ib{os.getpid() % 0xFFFF:04x}{n % 256:02x}"
        for p in self.ports:
            self.switch_side[p] = f"{self.tag}s{p}"
            self.host_side[p] = f"h{p}"

    def create(self) -> None:
        """The namespace (lo up) and one veth pair per port, both ends up, IPv6 off."""
        _run(["ip", "netns", "add", self.netns])
        self.created = True
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        for p in self.ports:
            sw, host = self.switch_side[p], self.host_side[p]
            _run(
                ["ip", "link", "add", sw, "mtu", str(MTU), "type", "veth", "peer", "name", host]
                + ["mtu", str(MTU), "netns", self.netns]
            )
            _set_sysctl(Path(f"/proc/sys/net/ipv6/conf/{sw}/disable_ipv6"), "1")
            _set_sysctl(Path(f"/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1", self.netns)
            _run(["ip", "link", "set", sw, "up"])
            _run(["ip", "-n", self.netns, "link", "set", host, "up"])

    def destroy(self) -> None:
        """Delete the pairs (the switch-side names) and the namespace."""
        if not self.created:
            return
        for sw in self.switch_side.values():
            subprocess.run(["ip", "link", "del", sw], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        self.created = False

    def open_sockets(self) -> dict[int, socket.socket]:
        """A raw AF_PACKET socket on each host-side end (created inside the namespace)."""
        result: dict[int, socket.socket] = {}
        errors: list[str] = []

        def work() -> None:
            # setns changes the namespace of this thread only; the sockets keep theirs.
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    errors.append(f"setns({self.netns}): {os.strerror(ctypes.get_errno())}")
                    return
            finally:
                os.close(fd)
            for p, ifname in self.host_side.items():
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                s.bind((ifname, 0))
                s.setblocking(False)
                result[p] = s

        t = threading.Thread(target=work, name=f"netns-{self.netns}")
        t.start()
        t.join()
        if errors:
            for s in result.values():
                s.close()
            raise ICPNError(errors[0])
        return result


def stale_namespaces() -> list[str]:
    """Namespaces of this module left by processes that no longer exist."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    stale = []
    for line in out.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        pid = name[len(NETNS_PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.append(name)
    return stale
