"""Congestion signals (SPEC 5, docs/pipeline.md 5): DCQCN-style ECN marking, ECN on
decapsulation (RFC 6040), and PFC (IEEE 802.1Qbb) generation, consumption and pauses."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pyctl import constants as C
from pyctl.model.node import ECNConfig, PFCConfig
from pyctl.targets.reference.frame import Drop, IPPacket, ethernet, set_ecn, u16

NOT_ECT = 0b00
PFC_DST = C.PFC_DST_MAC.to_bytes(6, "big")
PFC_PRIORITIES = 8
MIN_FRAME = 60  # without FCS
QUANTUM_BITS = 512


def ecn_threshold(cfg: ECNConfig, q: int) -> int:
    """pipeline.md 5: the 32-bit marking threshold T; mark iff rand32 < T. 0 up to Kmin,
    floor(Pmax * 2^32) * (q - Kmin) // (Kmax - Kmin) up to Kmax, 2^32 (always) above."""
    if q <= cfg.kmin_bytes:
        return 0
    if q > cfg.kmax_bytes:
        return 1 << 32
    return int(cfg.pmax * (1 << 32)) * (q - cfg.kmin_bytes) // (cfg.kmax_bytes - cfg.kmin_bytes)


def ecn_mark(data: bytes, version: int, cfg: ECNConfig, q: int, rand32: int) -> bytes:
    """RFC 3168 5: only ECT(0)/ECT(1) become CE; Not-ECT is never marked, CE stays CE."""
    ecn = traffic_ecn(data, version)
    if ecn in (NOT_ECT, C.ECN_CE) or rand32 >= ecn_threshold(cfg, q):
        return data
    return set_ecn(data, version, C.ECN_CE)


def traffic_ecn(data: bytes, version: int) -> int:
    return (data[1] >> 4 if version == 6 else data[1]) & 0b11


def ecn_decapsulate(outer_ecn: int, inner: IPPacket) -> bytes:
    """RFC 6040 4.2 normal mode, as Linux applies it: an outer CE is copied to an ECT inner
    header; a CE outer with a Not-ECT inner is dropped; anything else leaves the inner as is."""
    if outer_ecn != C.ECN_CE:
        return inner.data
    inner_ecn = traffic_ecn(inner.data, inner.version)
    if inner_ecn == NOT_ECT:
        raise Drop(C.DROP_ECN_NOT_ECT_CE)
    return set_ecn(inner.data, inner.version, C.ECN_CE)


def priority(cfg: PFCConfig, tos: int | None) -> int:
    """SPEC 5: the 3 high bits of the DSCP (TOS >> 5), or `default_priority` when configured
    so or when the frame has no IP header to read it from."""
    if cfg.priority_from_dscp and tos is not None:
        return tos >> 5
    return cfg.default_priority


def pfc_frame(src_mac: bytes, prio: int, time: int) -> bytes:
    """IEEE 802.1Qbb: MAC control frame to 01:80:C2:00:00:01, opcode 0x0101, the enable bit of
    `prio`, eight pause times (only `prio`'s set), zero-padded to 60 octets."""
    times = [time if p == prio else 0 for p in range(PFC_PRIORITIES)]
    body = struct.pack("!HH8H", C.PFC_OPCODE, 1 << prio, *times)
    return ethernet(PFC_DST, src_mac, C.PFC_ETHERTYPE, body).ljust(MIN_FRAME, b"\x00")


def parse_pfc(payload: bytes) -> tuple[int, tuple[int, ...]] | None:
    """Priority-enable vector (low octet) and the eight pause times; None unless opcode 0x0101
    with all 20 octets present."""
    if len(payload) < 4 + 2 * PFC_PRIORITIES or u16(payload, 0) != C.PFC_OPCODE:
        return None
    times = struct.unpack_from("!8H", payload, 4)
    return payload[3], tuple(times)


@dataclass
class PFCState:
    """Pauses received (until when each (port, priority) is paused) and XOFFs sent."""

    paused_until: dict[tuple[int, int], int] = field(default_factory=dict)
    xoff_sent: set[tuple[int, int]] = field(default_factory=set)

    def receive(
        self, port: int, vector: int, times: tuple[int, ...], now_us: int, line_rate_bps: int
    ) -> None:
        """pipeline.md 1.1: priority p (bit p of the vector) of `port` is paused until
        now + quanta * 512 bit times at the line rate; time 0 resumes it at once."""
        for p in range(PFC_PRIORITIES):
            if vector >> p & 1:
                pause_us = times[p] * QUANTUM_BITS * 1_000_000 // line_rate_bps
                self.paused_until[(port, p)] = now_us + pause_us

    def is_paused(self, port: int, prio: int, now_us: int) -> bool:
        return self.paused_until.get((port, prio), now_us) > now_us

    def generate(self, cfg: PFCConfig, port: int, prio: int, occupancy: int) -> int | None:
        """pipeline.md 1.2: the pause time to send back (XOFF `pause_time` while above
        xoff_pct% of the buffer, one XON 0 once below xon_pct% after an XOFF), else None."""
        key = (port, prio)
        if occupancy * 100 > cfg.xoff_pct * cfg.buffer_bytes:
            self.xoff_sent.add(key)
            return cfg.pause_time
        if occupancy * 100 < cfg.xon_pct * cfg.buffer_bytes and key in self.xoff_sent:
            self.xoff_sent.discard(key)
            return 0
        return None
