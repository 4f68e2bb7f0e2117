"""Two namespaces joined by one link through the link element (icpn_linkd in a third
namespace): a <-> La [element] Lb <-> b, addresses 10.0.0.1 and 10.0.0.2. Shared by the tests
of the element and of what runs over it; everything is removed when the block ends, also on
failure, and the block checks that it was."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyctl import netns
from pyctl.net.linkd import LinkElement, Spawn, linkd_binary, spawn_in_netns

LINK = "ab"


@dataclass
class Rig:
    a: netns.Netns
    b: netns.Netns
    links: netns.Netns
    el: LinkElement

    def spawn(self, ns: netns.Netns) -> Spawn:
        return spawn_in_netns(ns.name)


@contextmanager
def link_rig(prefix: str) -> Iterator[Rig]:
    linkd_binary()  # the Makefile builds it: missing is a failure with "run make build"
    made: list[netns.Netns] = []
    el: LinkElement | None = None
    try:
        for role in ("a", "b", "l"):
            made.append(netns.create(netns.unique_name(prefix, role)))
        a, b, lns = made
        for ns in (a, b):  # no IPv6 of their own: no RS/MLD frame takes a place in a queue
            subprocess.run(
                ["ip", "netns", "exec", ns.name, "sysctl", "-qw",
                 "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
                check=True,
            )  # fmt: skip
        netns.add_veth(a, "eth0", lns, "La")
        netns.add_veth(b, "eth0", lns, "Lb")
        for ns, addr in ((a, "10.0.0.1/24"), (b, "10.0.0.2/24")):
            ns.ip_batch([f"addr add {addr} dev eth0", "link set eth0 up"])
        el = LinkElement(spawn_in_netns(lns.name), seed=7)
        el.add(LINK, "La", "Lb")
        yield Rig(a, b, lns, el)
    finally:
        if el is not None:
            el.stop()
        for ns in made:
            ns.delete()
        assert not any(ns.exists() for ns in made)
        assert el is None or el.proc.poll() is not None, "icpn_linkd still running"
