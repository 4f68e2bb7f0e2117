"""pyctl.netns: named namespaces, veth pairs, code run inside a namespace, cleanup by prefix."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctl import netns

pytestmark = pytest.mark.root

PREFIX = "icpnt-ns"


@pytest.fixture
def pair() -> Iterator[tuple[netns.Netns, netns.Netns]]:
    a = netns.create(netns.unique_name(PREFIX, "a"))
    b = netns.create(netns.unique_name(PREFIX, "b"))
    try:
        yield a, b
    finally:
        a.delete()
        b.delete()
    assert not a.exists() and not b.exists()


def _links() -> list[str]:
    """Interfaces of the calling thread's namespace (/sys would show the mounter's)."""
    lines = Path("/proc/thread-self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def test_names_carry_prefix_and_pid() -> None:
    name = netns.unique_name(PREFIX, "t")
    assert name.startswith(f"{PREFIX}-{os.getpid()}-") and name.endswith("-t")
    assert netns.owner_pid(name, PREFIX) == os.getpid()
    assert netns.owner_pid(f"{PREFIX}-12-zz", PREFIX) is None
    assert netns.owner_pid(f"{PREFIX}x-12-ab", PREFIX) is None
    assert netns.unique_name(PREFIX) != netns.unique_name(PREFIX)


def test_veth_between_namespaces_and_run_inside(pair: tuple[netns.Netns, netns.Netns]) -> None:
    a, b = pair
    netns.add_veth(a, "va", b, "vb", a_mac="02:00:00:00:aa:01", mtu=9000)
    a.ip_batch(["link set va up"])
    b.ip_batch(["link set vb up"])
    # the interfaces exist only inside their namespaces, not in the caller's
    assert "va" in a.ip("-o", "link", "show") and "vb" in b.ip("-o", "link", "show")
    assert not Path("/sys/class/net/va").exists()
    # a socket opened by run() belongs to the namespace: raw frames cross the veth
    rx = b.run(lambda: _packet_socket("vb"))
    tx = a.run(lambda: _packet_socket("va"))
    try:
        frame = bytes.fromhex("02000000000102000000aa0188b5") + b"hello-netns".ljust(46, b"\0")
        tx.send(frame)
        rx.settimeout(1.0)
        assert rx.recv(2048) == frame
    finally:
        rx.close()
        tx.close()
    assert a.run(_links) == ["lo", "va"] and b.run(_links) == ["lo", "vb"]
    # sysctls are written in the namespace only
    root_value = Path("/proc/sys/net/ipv6/conf/default/hop_limit").read_text()
    a.sysctl({"net.ipv6.conf.default.hop_limit": 17, "net/ipv6/conf/va/hop_limit": 18})
    hop = Path("/proc/sys/net/ipv6/conf/default/hop_limit")
    assert a.run(hop.read_text).strip() == "17" and b.run(hop.read_text) == root_value
    assert a.run(Path("/proc/sys/net/ipv6/conf/va/hop_limit").read_text).strip() == "18"
    assert hop.read_text() == root_value


def _packet_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
    s.bind((ifname, 0x88B5))
    return s


def test_batch_error_names_the_failing_command(pair: tuple[netns.Netns, netns.Netns]) -> None:
    a, _ = pair
    with pytest.raises(netns.NetnsError, match=r"link set nosuchdev up .*netns " + a.name):
        a.ip_batch(["link set lo up", "link set nosuchdev up"])
    with pytest.raises(netns.NetnsError, match=r"sysctl net.ipv6.nosuch=1"):
        a.sysctl({"net.ipv6.nosuch": 1})
    with pytest.raises(netns.NetnsError, match="already exists"):
        netns.create(a.name)


def test_run_isolated_leaves_nothing() -> None:
    before = netns.names()
    assert netns.run_isolated(_links) == ["lo"]
    assert netns.names() == before


def test_cleanup_stale_removes_only_dead_owners() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = netns.create(f"{PREFIX}-{dead.pid}-0a0b0c")
    mine = netns.create(netns.unique_name(PREFIX))
    other = netns.create(f"{PREFIX}other-{dead.pid}-0a0b0c")
    try:
        removed = netns.cleanup_stale(PREFIX)
        assert stale.name in removed and mine.name not in removed
        assert not stale.exists() and mine.exists() and other.exists()
    finally:
        for ns in (stale, mine, other):
            ns.delete()
