"""Attach and detach BPF programs on interfaces with pyroute2: XDP (native or generic) and tc
clsact filters in direct-action mode (ingress or egress).

DESIGN.md: frames an XDP program redirects into a veth are lost unless the peer has an XDP
program too (or GRO on), and XDP_REDIRECT bypasses qdiscs; use tc where shaping must apply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyctl import netns
from pyctl.errors import ICPNError

T = TypeVar("T")

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2

XDPMode = Literal["native", "generic"]
Direction = Literal["ingress", "egress"]

_MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
# clsact's two hooks (tc parent ids ffff:fff2 / ffff:fff3)
_PARENT = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}


def current_netns() -> int:
    """An fd of the calling thread's network namespace (ifindexes only mean something in one)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def same_netns(fd: int) -> bool:
    here = os.stat("/proc/thread-self/ns/net")
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def in_netns(fd: int, fn: Callable[[], T]) -> T:
    """Call `fn` in the namespace open at `fd`: here when it is this thread's, else on a thread
    that joined it (pyctl.netns)."""
    if same_netns(fd):
        return fn()
    return netns.in_netns_fd(fd, fn)


def ifindex_of(ifname: str, ipr: IPRoute | None = None) -> int:
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        found = ipr.link_lookup(ifname=ifname)
    finally:
        if own:
            ipr.close()
    if not found:
        raise ICPNError(f"no interface named {ifname!r} in this network namespace")
    return int(found[0])


def _netlink(what: str, e: NetlinkError) -> ICPNError:
    return ICPNError(f"{what}: {e.args[-1] if e.args else e} (netlink error {e.code})")


def attach_xdp(ifindex: int, prog_fd: int, mode: XDPMode = "native") -> None:
    """Attach an XDP program (replacing one already there in the same mode)."""
    flags = _MODE_FLAGS[mode]
    with IPRoute() as ipr:
        try:
            ipr.link(
                "set",
                index=ifindex,
                xdp={"attrs": [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", flags)]},
            )
        except NetlinkError as e:
            hint = " (try mode='generic')" if mode == "native" else ""
            raise _netlink(f"attaching XDP ({mode}) to ifindex {ifindex}{hint}", e) from None


def detach_xdp(ifindex: int, mode: XDPMode = "native") -> None:
    with IPRoute() as ipr:
        try:
            ipr.link(
                "set",
                index=ifindex,
                xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", _MODE_FLAGS[mode])]},
            )
        except NetlinkError as e:
            raise _netlink(f"detaching XDP from ifindex {ifindex}", e) from None


def xdp_prog_id(ifindex: int) -> int | None:
    """Id of the XDP program on an interface of this namespace (either mode), None if none."""
    with IPRoute() as ipr:
        try:
            (link,) = ipr.get_links(ifindex)
        except NetlinkError as e:
            raise _netlink(f"reading ifindex {ifindex}", e) from None
    xdp = link.get_attr("IFLA_XDP")
    prog = xdp.get_attr("IFLA_XDP_PROG_ID") if xdp is not None else None
    return int(prog) if prog else None


def attach_tc(ifindex: int, prog_fd: int, direction: Direction, name: str = "icpn") -> None:
    """Add a clsact qdisc if missing, then a direct-action bpf filter on the given hook."""
    with IPRoute() as ipr:
        try:
            ipr.tc("add", "clsact", ifindex)
        except NetlinkError as e:
            if e.code != 17:  # EEXIST: the qdisc is already there
                raise _netlink(f"adding clsact to ifindex {ifindex}", e) from None
        try:
            ipr.tc(
                "add-filter",
                "bpf",
                ifindex,
                ":1",
                fd=prog_fd,
                name=name,
                parent=_PARENT[direction],
                classid=1,
                direct_action=True,
            )
        except NetlinkError as e:
            raise _netlink(f"attaching tc {direction} filter to ifindex {ifindex}", e) from None


def detach_tc(ifindex: int) -> None:
    """Remove the clsact qdisc and with it every filter on both hooks."""
    with IPRoute() as ipr:
        try:
            ipr.tc("del", "clsact", ifindex)
        except NetlinkError as e:
            if e.code not in (2, 22):  # ENOENT / EINVAL: nothing attached
                raise _netlink(f"removing clsact from ifindex {ifindex}", e) from None
