"""Application-side APN marking: ebpf/build/icpn_host_apn.bpf.o on a host's tc egress hook.

An application opts in with ``setsockopt(SOL_SOCKET, SO_MARK, m)``; the program inserts the APN
option that `apn.socket_marks` maps `m` to (SPEC 2, docs/pipeline.md 3). `HostAPN.process` runs it
through BPF_PROG_TEST_RUN with the skb mark set, `attach` puts it on an interface.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

from pyctl import constants as C
from pyctl.errors import ConfigError, ICPNError, PacketError
from pyctl.model.node import APNCarrier, NodeConfig
from pyctl.targets.ebpf import attach as att
from pyctl.targets.ebpf import bpfobject
from pyctl.targets.ebpf import maps as M
from pyctl.targets.ebpf.dataplane import BUILD_DIR, MAX_FRAME
from pyctl.targets.ebpf.writer import socket_mark_entries

HOST_OBJECT = BUILD_DIR / "icpn_host_apn.bpf.o"
HOST_PROGRAM = "icpn_host_apn"
TC_ACT_OK = 0
# BPF_PROG_TEST_RUN of a tc program refuses an IP frame shorter than its fixed IP header.
MIN_IP_FRAME = {b"\x86\xdd": C.ETH_HLEN + 40, b"\x08\x00": C.ETH_HLEN + 20}


def skb_ctx(mark: int) -> bytes:
    """The start of a struct __sk_buff for a test run: len and pkt_type 0, then the mark."""
    if not 0 <= mark <= 0xFFFFFFFF:
        raise PacketError(f"skb mark {mark!r} is not a 32-bit value")
    return struct.pack("=III", 0, 0, mark)


class HostAPN:
    """The host program loaded, its maps written from a node's `apn` settings."""

    def __init__(self, node: NodeConfig, obj_path: Path = HOST_OBJECT) -> None:
        carrier = node.apn.carrier
        if carrier is APNCarrier.SRH_TLV:
            raise ConfigError(
                f"node {node.name}: apn.carrier",
                "srh-tlv cannot be inserted by a host (no SRH); use hbh or doh",
            )
        entries = socket_mark_entries(node)
        self._obj = bpfobject.BPFObject(obj_path)
        try:
            self._obj.load()
        except ICPNError:
            self._obj.close()
            raise
        cfg = M.HostCfg(
            carrier=M.CARRIER_HBH if carrier is APNCarrier.HBH else M.CARRIER_DOH,
            opt_type=node.apn.option_type,
        )
        self._obj.map("host_cfg").update(M.u32_key(0), cfg)
        marks = self._obj.map("socket_marks")
        for key, value in entries:
            marks.update(key, value)
        self._attached: list[int] = []
        self._netns: int | None = None  # fd of the namespace the ifindexes belong to

    @property
    def program(self) -> bpfobject.Program:
        return self._obj.program(HOST_PROGRAM)

    def process(self, frame: bytes, mark: int) -> bytes:
        """The frame as it leaves the host when sent by a socket with SO_MARK `mark`."""
        if not C.ETH_HLEN <= len(frame) <= MAX_FRAME:
            raise PacketError(
                f"frame of {len(frame)} bytes: the host program takes {C.ETH_HLEN}..{MAX_FRAME}"
            )
        least = MIN_IP_FRAME.get(frame[12:14], C.ETH_HLEN)
        if len(frame) < least:
            raise PacketError(
                f"a {len(frame)}-byte IP frame cannot be test-run (the kernel wants >= {least})"
            )
        run = self.program.test_run(frame, ctx=skb_ctx(mark))
        if run.retval != TC_ACT_OK:
            raise ICPNError(f"{HOST_PROGRAM} returned {run.retval}, expected TC_ACT_OK")
        return run.data

    def marked(self) -> int:
        """Packets the program has given an APN option."""
        raw = self._obj.map("host_cfg").lookup(M.u32_key(0))
        return M.HostCfg.from_buffer_copy(raw).n_marked if raw else 0

    def attach(self, ifindex: int) -> None:
        """Mark the interface's outgoing packets (tc egress, clsact). The ifindex is one of the
        calling thread's network namespace; every attach of one HostAPN is in one namespace."""
        if self._netns is not None and not att.same_netns(self._netns):
            raise ICPNError(f"{HOST_PROGRAM}: already attached in another network namespace")
        att.attach_tc(ifindex, self.program.fd, "egress", name=HOST_PROGRAM)
        if self._netns is None:
            self._netns = att.current_netns()
        self._attached.append(ifindex)

    def close(self) -> None:
        """Detach from every interface (in the namespace `attach` ran in, whichever thread
        calls this), then release the program and its maps."""
        fd, self._netns = self._netns, None
        try:
            while self._attached and fd is not None:
                ifindex = self._attached.pop()
                att.in_netns(fd, functools.partial(att.detach_tc, ifindex))
        finally:
            self._attached.clear()
            if fd is not None:
                os.close(fd)
            self._obj.close()

    def __enter__(self) -> HostAPN:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
