"""RoCEv2-like traffic for the emulated hosts: a paced UDP sender and a counting receiver.

Run inside Mininet hosts as `python -m pyctl.net.traffic send|recv ...`; each writes its figures
as JSON to `--stats` every half second while it runs and when it ends (duration over, or
SIGTERM).

* The sender puts a 12-octet InfiniBand BTH (opcode RC SEND-only, the flow's destination QP, a
  PSN) at the start of every UDP payload to port 4791, marks ECT(0) in the traffic class and,
  with `--mark`, sets SO_MARK so a host-side APN program can tag the flow. It reacts to CNPs
  DCQCN-style: each CNP halves the rate (not below 1/64 of the target), which then recovers by
  1/16 of the target every 5 ms without one.
* With `--window-bytes W` the flow is a reliable connection (RC), as an RDMA NIC runs it: at
  most W bytes unacknowledged; the packets that fill the window and every `ACK_EVERY`-th one
  ask for an acknowledgement (the BTH AckReq bit); a receiver's NAK (PSN sequence error) or no
  progress for `--rto-ms` makes the sender go back to the first unacknowledged PSN and resend
  from there (go-back-N). A flow so sustains at most W / round trip, and every loss costs it
  the rest of its window again. Without a window the sender is paced and unacknowledged.
  With `--fetch-bytes N --fetches K` as well, it moves K messages of N bytes one after the
  other, each once the previous one is wholly acknowledged (a reader fetching batches, a GPU's
  share of an all-reduce step), and records each one's time from its first packet to the
  acknowledgement of its last: the transfer plus one round trip, as its requester sees it
  (request one way, data the other).
* The receiver counts packets, bytes and CE marks per (source, QP) from the received traffic
  class (IPV6_RECVTCLASS), and answers CE-marked packets with a CNP (BTH opcode 0x81, BECN set)
  sent back to the packet's source address and port, at most one per QP every 50 us. Once a QP
  asked for an acknowledgement it is a reliable connection: the receiver takes its packets in
  PSN order only (counting only those), acknowledges (opcode 0x11 with an AETH, cumulative
  PSN) those that ask, and answers the first packet past a gap with one NAK naming the PSN it
  expects.
* With `--pfc-iface`, the sender also honours PFC pause frames for its priority (TC >> 5)
  arriving on its interface: it holds its packets for the pause time (quanta of 512 bit times
  at `--line-rate-mbit`) or until a time-0 frame resumes it.
  Real RoCEv2 sends CNPs to port 4791 and demultiplexes by QP; a kernel UDP socket cannot, so
  the CNP goes to the sender's own port (a documented simplification).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from pyctl import constants as C

PACED_PAYLOAD = 1000  # octets a packet of a flow without --size (BTH included)
SNAPSHOT_S = 0.5  # the stats file is rewritten this often while the flow runs (the live view)

BTH = struct.Struct("!BBHII")  # opcode, flags(SE M PadCnt TVer), P_Key, dest QP (24) , PSN (24)
OPCODE_SEND_ONLY = 0x04
OPCODE_CNP = 0x81
OPCODE_ACK = 0x11  # RC ACKNOWLEDGE: BTH + AETH
AETH = struct.Struct("!I")  # syndrome (8) | MSN (24)
SYNDROME_ACK = 0x00
SYNDROME_NAK_PSN = 0x60  # NAK: PSN sequence error
ACKREQ = 1 << 31  # the BTH's AckReq bit, above the PSN
PSN_MOD = 1 << 24
ACK_EVERY = 8  # a windowed sender asks for an acknowledgement every 8th packet (coalesced)
BECN = 0x40  # in the byte after the QP's reserved byte: FECN(7) BECN(6)
ECT0 = 0b10
CE = 0b11
IPV6_RECVTCLASS = 66
IPV6_TCLASS = 67
SO_MARK = 36
CNP_MIN_GAP_S = 50e-6
SO_RCVBUFFORCE = 33
RCVBUF = 8 << 20


def bth(opcode: int, qp: int, psn: int, becn: bool = False, ackreq: bool = False) -> bytes:
    """Opcode, flags 0, P_Key 0xFFFF, then `reserved(8) | dest QP(24)` and `A | reserved(7) |
    PSN(24)`; a CNP carries BECN in the FECN/BECN bits of the reserved octet before the QP."""
    qp_word = ((BECN if becn else 0) << 24) | (qp & 0xFFFFFF)
    return BTH.pack(opcode, 0, 0xFFFF, qp_word, (psn % PSN_MOD) | (ACKREQ if ackreq else 0))


def ack(qp: int, psn: int, nak: bool = False) -> bytes:
    """An RC ACKNOWLEDGE: cumulative up to `psn`, or a NAK (sequence error) expecting `psn`."""
    syndrome = SYNDROME_NAK_PSN if nak else SYNDROME_ACK
    return bth(OPCODE_ACK, qp, psn) + AETH.pack(syndrome << 24)


def unwrap(psn24: int, near: int) -> int:
    """The full PSN whose low 24 bits are `psn24`, nearest to `near`."""
    full = (near - near % PSN_MOD) + psn24
    if full < near - PSN_MOD // 2:
        full += PSN_MOD
    elif full > near + PSN_MOD // 2:
        full -= PSN_MOD
    return full


@dataclass
class SenderStats:
    dst: str
    qp: int
    packets: int = 0
    bytes: int = 0
    cnps: int = 0
    pfc_pauses: int = 0
    window_bytes: int = 0
    acked_bytes: int = 0  # windowed: bytes the receiver acknowledged
    retransmits: int = 0  # windowed: packets sent again (go-back-N)
    naks: int = 0
    timeouts: int = 0
    fetch_s: list[float] = field(default_factory=list)  # each message's transfer + round trip
    seconds: float = 0.0
    rate_samples: list[tuple[float, float]] = field(default_factory=list)  # (t, Mbit/s)


@dataclass
class FlowCount:
    packets: int = 0
    bytes: int = 0
    ce: int = 0
    first: float = 0.0
    last: float = 0.0
    reliable: bool = False  # the QP asked for acknowledgements: in-order only
    expected: int = 0  # reliable: the next PSN it takes
    out_of_order: int = 0  # reliable: packets dropped (past a gap, or already taken)
    naked: bool = False  # a NAK went out for the current gap


class Snapshot:
    """The figures so far, written to the stats file every `every_s` while the flow runs (a
    live view reads it: `pyctl.net.flowstats`) and once more at the end. Replaced whole, so a
    reader never sees half a file."""

    def __init__(self, path: str, every_s: float = SNAPSHOT_S) -> None:
        self.path, self.every_s = Path(path), every_s
        self.last = time.monotonic()

    def due(self, now: float) -> bool:
        return now - self.last >= self.every_s

    def write(self, obj: object) -> None:
        self.last = time.monotonic()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, self.path)


class Stopper:
    """Ends the loop at the deadline or on SIGTERM/SIGINT (the process is owned by this CLI)."""

    def __init__(self, duration: float) -> None:
        self.deadline = time.monotonic() + duration
        self.stopped = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def running(self) -> bool:
        return not self.stopped and time.monotonic() < self.deadline


class PFCListener:
    """Honours PFC frames (IEEE 802.1Qbb) received on the sending interface for our priority:
    the sender holds its packets while paused (a Linux veth would ignore them)."""

    def __init__(self, ifname: str, priority: int, line_rate_bps: float) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(C.PFC_ETHERTYPE))
        self.sock.bind((ifname, 0))
        self.sock.setblocking(False)
        self.priority = priority
        self.rate = line_rate_bps
        self.paused_until = 0.0
        self.pauses = 0

    def poll(self, now: float) -> bool:
        """Read pending PFC frames; True while our priority is paused."""
        try:
            while True:
                frame = self.sock.recv(128)
                if len(frame) < 34 or struct.unpack_from("!H", frame, 14)[0] != C.PFC_OPCODE:
                    continue
                vector = struct.unpack_from("!H", frame, 16)[0]
                if vector >> self.priority & 1:
                    quanta = struct.unpack_from("!H", frame, 18 + 2 * self.priority)[0]
                    self.paused_until = now + quanta * 512 / self.rate
                    self.pauses += quanta > 0
        except BlockingIOError:
            pass
        return now < self.paused_until


def send(args: argparse.Namespace) -> SenderStats:
    family = socket.AF_INET6 if ":" in args.dst else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, args.tclass)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, args.tclass)
    if args.mark:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, args.mark)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", args.sport))
    sock.setblocking(False)
    payload_len = max(BTH.size, args.size)
    target = args.rate_mbit * 1e6
    rate = target
    stats = SenderStats(args.dst, args.qp)
    pfc = (
        PFCListener(args.pfc_iface, args.tclass >> 5, args.line_rate_mbit * 1e6)
        if args.pfc_iface
        else None
    )
    stop = Stopper(args.duration)
    snapshot = Snapshot(args.stats)
    start = last_cnp = last_sample = time.monotonic()
    next_send = start
    psn = 0
    window = stats.window_bytes = max(0, args.window_bytes)
    acked = 0  # windowed: every PSN below this is acknowledged
    highest = 0  # windowed: one past the highest PSN ever sent
    progress = start  # windowed: when `acked` last moved (or the sender went back)
    rto = args.rto_ms / 1000
    per_fetch = -(-args.fetch_bytes // payload_len) if window and args.fetch_bytes > 0 else 0
    end = per_fetch or None  # one past the last PSN of the message being sent
    fetch_start = start
    while stop.running():
        now = time.monotonic()
        try:
            while True:
                data = sock.recv(2048)
                if len(data) < BTH.size:
                    continue
                if data[0] == OPCODE_CNP:
                    stats.cnps += 1
                    rate = max(target / 64, rate / 2)
                    last_cnp = now
                elif data[0] == OPCODE_ACK and window and len(data) >= BTH.size + AETH.size:
                    got = unwrap(BTH.unpack_from(data)[4] & (PSN_MOD - 1), acked)
                    nak = AETH.unpack_from(data, BTH.size)[0] >> 24 == SYNDROME_NAK_PSN
                    upto = got if nak else got + 1
                    if upto > acked:
                        stats.acked_bytes += (upto - acked) * payload_len
                        acked, progress = upto, now
                    psn = max(psn, acked)
                    if nak and got == acked:
                        stats.naks += 1
                        psn, progress = acked, now  # go back: resend from the gap
        except BlockingIOError:
            pass
        if window and psn > acked and now - progress > rto:
            stats.timeouts += 1
            psn, progress = acked, now
        if end is not None and acked >= end:
            stats.fetch_s.append(round(now - fetch_start, 6))
            if len(stats.fetch_s) >= args.fetches:
                break
            end += per_fetch
            fetch_start = next_send = now
        if end is not None and psn >= end:
            time.sleep(0.0002)  # the message is out: wait for its acknowledgement
            continue
        if now - last_cnp > 0.005 and rate < target:
            rate = min(target, rate + target / 16)
            last_cnp = now
        if now - last_sample >= 0.1:
            stats.rate_samples.append((round(now - start, 3), round(rate / 1e6, 3)))
            last_sample = now
            if snapshot.due(now):
                stats.seconds = round(now - start, 3)
                stats.pfc_pauses = pfc.pauses if pfc is not None else 0
                snapshot.write(asdict(stats))
        if pfc is not None and pfc.poll(now):
            time.sleep(0.0002)
            next_send = max(next_send, time.monotonic())
            continue
        if now < next_send:
            time.sleep(min(next_send - now, 0.001))
            continue
        fills = window and (psn + 2 - acked) * payload_len > window
        if window and (psn + 1 - acked) * payload_len > window:
            time.sleep(0.0002)  # the window is full: wait for acknowledgements
            continue
        last = end is not None and psn == end - 1
        ask = bool(window) and (fills or last or psn % ACK_EVERY == ACK_EVERY - 1 or psn == 0)
        packet = bth(OPCODE_SEND_ONLY, args.qp, psn, ackreq=ask) + bytes(payload_len - BTH.size)
        try:
            sock.sendto(packet, (args.dst, args.dport))
        except (BlockingIOError, OSError):
            next_send = now + 0.0005  # the qdisc is full or the route is gone: back off briefly
            continue
        if psn < highest:
            stats.retransmits += 1
        psn += 1
        highest = max(highest, psn)
        stats.packets += 1
        stats.bytes += len(packet)
        next_send = max(next_send + len(packet) * 8 / rate, now - 0.01)
    stats.seconds = round(time.monotonic() - start, 3)
    stats.pfc_pauses = pfc.pauses if pfc is not None else 0
    return stats


def recv(args: argparse.Namespace) -> dict[str, FlowCount]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    # A NIC does not drop what the wire delivered: room for a long-haul window while this
    # process waits for a CPU (SO_RCVBUFFORCE as root, else what rmem_max allows).
    for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
            break
        except OSError:
            continue
    sock.bind(("::", args.port))
    sock.settimeout(0.1)
    flows: dict[str, FlowCount] = {}
    last_cnp: dict[int, float] = {}
    stop = Stopper(args.duration)
    snapshot = Snapshot(args.stats)
    while stop.running():
        if snapshot.due(time.monotonic()):
            snapshot.write({k: asdict(v) for k, v in flows.items()})
        try:
            data, anc, _flags, addr = sock.recvmsg(65536, socket.CMSG_SPACE(4))
        except TimeoutError:
            continue
        now = time.monotonic()
        tclass = 0
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_TCLASS and len(value) >= 4:
                tclass = struct.unpack("i", value[:4])[0]
        fields = BTH.unpack_from(data) if len(data) >= BTH.size else (0, 0, 0, 0, 0)
        qp, psn_word = fields[3] & 0xFFFFFF, fields[4]
        key = f"{addr[0]}/{qp:#x}"
        fc = flows.setdefault(key, FlowCount(first=now))
        if psn_word & ACKREQ and not fc.reliable:
            fc.reliable = True
            fc.expected = unwrap(psn_word & (PSN_MOD - 1), fc.expected)
        take = True
        if fc.reliable:
            psn = unwrap(psn_word & (PSN_MOD - 1), fc.expected)
            take = psn == fc.expected
            if take:
                fc.expected += 1
                fc.naked = False
                if psn_word & ACKREQ:
                    sock.sendto(ack(qp, psn), addr[:2])
            else:
                fc.out_of_order += 1
                if psn > fc.expected and not fc.naked:
                    fc.naked = True
                    sock.sendto(ack(qp, fc.expected, nak=True), addr[:2])
                elif psn < fc.expected and psn_word & ACKREQ:
                    sock.sendto(ack(qp, fc.expected - 1), addr[:2])
        if take:
            fc.packets += 1
            fc.bytes += len(data)
            fc.last = now
        if tclass & 0b11 == CE:
            fc.ce += 1
            if now - last_cnp.get(qp, 0.0) >= CNP_MIN_GAP_S:
                last_cnp[qp] = now
                sock.sendto(bth(OPCODE_CNP, qp, 0, becn=True) + bytes(16), addr[:2])
    return flows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pyctl.net.traffic", description=__doc__)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send", help="paced RoCEv2-like UDP flow")
    s.add_argument("--dst", required=True)
    s.add_argument("--dport", type=int, default=C.ROCEV2_UDP_PORT)
    s.add_argument("--sport", type=int, default=0)
    s.add_argument("--qp", type=lambda x: int(x, 0), default=0x11)
    s.add_argument("--rate-mbit", type=float, default=10.0)
    s.add_argument(
        "--size", type=int, default=PACED_PAYLOAD, help="UDP payload octets (BTH included)"
    )
    s.add_argument("--tclass", type=lambda x: int(x, 0), default=ECT0)
    s.add_argument("--mark", type=lambda x: int(x, 0), default=0, help="SO_MARK (host APN)")
    s.add_argument("--duration", type=float, default=5.0)
    s.add_argument("--pfc-iface", help="honour PFC pause frames received on this interface")
    s.add_argument("--line-rate-mbit", type=float, default=1000.0, help="for PFC pause quanta")
    s.add_argument(
        "--window-bytes", type=int, default=0, help="reliable (RC): bytes unacknowledged at most"
    )
    s.add_argument("--rto-ms", type=float, default=537.0, help="RC: resend after no progress")
    s.add_argument("--fetch-bytes", type=int, default=0, help="RC: message size (0: stream)")
    s.add_argument("--fetches", type=int, default=1, help="RC: messages, one after the other")
    s.add_argument("--stats", required=True, help="JSON file written at the end")
    r = sub.add_parser("recv", help="count packets, bytes and CE per (source, QP); answer CNPs")
    r.add_argument("--port", type=int, default=C.ROCEV2_UDP_PORT)
    r.add_argument("--duration", type=float, default=10.0)
    r.add_argument("--stats", required=True)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "send":
        if not 0 < args.rate_mbit <= 100_000:
            print(
                f"traffic: --rate-mbit {args.rate_mbit} is out of range (0, 100000]",
                file=sys.stderr,
            )
            return 2
        result: object = asdict(send(args))
    else:
        result = {k: asdict(v) for k, v in recv(args).items()}
    Snapshot(args.stats).write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
