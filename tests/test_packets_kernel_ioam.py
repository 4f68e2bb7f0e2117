"""pyctl.packets against the Linux kernel as IOAM node: trace options the kernel stamps in
a namespace, dissected and checked against its configured node and namespace data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pyctl.packets import (
    IOAM_OVERFLOW_FLAG,
    TRACE_TYPE_DEFAULT,
    IOAMNodeRecord,
    IOAMTraceOption,
    ioam_trace_option,
    trace_type_from_bits,
    validate_packet,
)

# ---------------------------------------------------------------- the Linux kernel as IOAM node

NODE_ID = 0xABCDEF
NODE_ID_WIDE = 0x11223344556677
NS_DATA = 0xDEADBEEF
NS_DATA_WIDE = 0xCAFE0000CAFE0000
MARKER = b"icpn-ioam-probe"

CAPTURE = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
s.bind(("pkc0", 0))
s.settimeout(10)
print("ready", flush=True)
want = int(sys.argv[1])
while want:
    f = s.recv(65535)
    if sys.argv[2].encode() in f:
        print(f.hex(), flush=True)
        want -= 1
"""

SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("pka0", 0))
for frame in sys.argv[1:]:
    s.send(bytes.fromhex(frame))
"""


@dataclass(frozen=True)
class KernelPath:
    """A -- B -- C; B is a Linux router that stamps IOAM namespace 123."""

    a: str
    b: str
    c: str
    a_mac: str
    b_mac: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def kernel_path() -> Iterator[KernelPath]:
    a, b, c = (f"icpnt-pk{os.getpid()}{x}" for x in "abc")
    created: list[str] = []
    try:
        for ns in (a, b, c):
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "pka0", "netns", a, "type", "veth", "peer", "name", "pkb0", "netns", b)
        _ip("link", "add", "pkb1", "netns", b, "type", "veth", "peer", "name", "pkc0", "netns", c)
        for ns, dev, addr in (
            (a, "pka0", "2001:db8:1::1/64"),
            (b, "pkb0", "2001:db8:1::2/64"),
            (b, "pkb1", "2001:db8:2::2/64"),
            (c, "pkc0", "2001:db8:2::3/64"),
        ):
            _ip("-n", ns, "addr", "add", addr, "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", c, "route", "add", "2001:db8:1::/64", "via", "2001:db8:2::2")
        for key, value in (
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv6.ioam6_id", str(NODE_ID)),
            ("net.ipv6.ioam6_id_wide", str(NODE_ID_WIDE)),
            ("net.ipv6.conf.pkb0.ioam6_enabled", "1"),
            ("net.ipv6.conf.pkb0.ioam6_id", "11"),
            ("net.ipv6.conf.pkb1.ioam6_id", "12"),
        ):
            subprocess.run(
                ["ip", "netns", "exec", b, "sysctl", "-qw", f"{key}={value}"],
                check=True,
                timeout=10,
            )
        _ip(
            "-n",
            b,
            "ioam",
            "namespace",
            "add",
            "123",
            "data",
            f"{NS_DATA:#x}",
            "wide",
            f"{NS_DATA_WIDE:#x}",
        )
        macs = [
            json.loads(
                subprocess.run(
                    ["ip", "-n", ns, "-j", "link", "show", dev],
                    check=True,
                    capture_output=True,
                    timeout=10,
                ).stdout
            )[0]["address"]
            for ns, dev in ((a, "pka0"), (b, "pkb0"))
        ]
        yield KernelPath(a, b, c, macs[0], macs[1])
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=10)


def _through_kernel(path: KernelPath, options: list[IOAMTraceOption]) -> list[bytes]:
    frames = [
        bytes(
            Ether(src=path.a_mac, dst=path.b_mac)
            / IPv6(src="2001:db8:1::1", dst="2001:db8:2::3", hlim=64)
            / IPv6ExtHdrHopByHop(options=[opt])
            / UDP(sport=4000, dport=9999)
            / Raw(MARKER)
        )
        for opt in options
    ]
    cap = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            path.c,
            sys.executable,
            "-c",
            CAPTURE,
            str(len(frames)),
            MARKER.decode(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stdout is not None and cap.stdout.readline().strip() == "ready"
        subprocess.run(
            ["ip", "netns", "exec", path.a, sys.executable, "-c", SEND] + [f.hex() for f in frames],
            check=True,
            timeout=10,
        )
        out, _ = cap.communicate(timeout=15)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    assert cap.returncode == 0
    return [bytes.fromhex(line) for line in out.split()]


@pytest.mark.root
@pytest.mark.kernel
def test_linux_kernel_stamps_ioam_trace(kernel_path: KernelPath) -> None:
    all_bits = trace_type_from_bits(*range(12))
    full = ioam_trace_option(namespace_id=123, trace_type=TRACE_TYPE_DEFAULT, max_nodes=1)
    full.stamp(IOAMNodeRecord(node_id=1))  # no room left: the kernel must set Overflow
    sent = [
        ioam_trace_option(namespace_id=123, trace_type=TRACE_TYPE_DEFAULT, max_nodes=2),
        ioam_trace_option(namespace_id=123, trace_type=all_bits, max_nodes=3),
        full,
    ]
    now = time.time()
    got = _through_kernel(kernel_path, sent)
    assert len(got) == 3
    for raw in got:
        assert validate_packet(raw) == []
    by_type = {}
    for raw in got:
        opt = Ether(raw)[IOAMTraceOption]
        by_type[(int(opt.trace_type), int(opt.flags.overflow))] = (Ether(raw), opt)

    pkt, default = by_type[(TRACE_TYPE_DEFAULT, 0)]
    (rec,) = default.records()
    assert default.remaining_len == 5
    assert (rec.node_id, rec.ingress_if, rec.egress_if) == (NODE_ID, 11, 12)
    assert rec.hop_limit == pkt[IPv6].hlim == 63
    assert abs(rec.ts_sec - now) < 120 and rec.ts_subsec < 1_000_000

    _, wide = by_type[(all_bits, 0)]
    (rec,) = wide.records()
    assert wide.remaining_len == 30
    assert (rec.node_id, rec.node_id_wide, rec.hop_limit_wide) == (NODE_ID, NODE_ID_WIDE, 63)
    assert (rec.namespace_data, rec.namespace_data_wide) == (NS_DATA, NS_DATA_WIDE)
    assert rec.checksum_complement == 0xFFFFFFFF  # Linux cannot provide it: all ones

    _, overflowed = by_type[(TRACE_TYPE_DEFAULT, 1)]
    assert overflowed.path() == [1]
    assert int.from_bytes(bytes(overflowed)[6:8], "big") & IOAM_OVERFLOW_FLAG
