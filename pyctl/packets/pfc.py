"""Priority-based Flow Control frame (IEEE 802.1Qbb, MAC Control opcode 0x0101; SPEC §5).

MAC Control payload (after EtherType 0x8808)::

    Opcode=0x0101(16) | Priority-Enable Vector(16) | Time[0..7](16 each) | zero pad to 46 bytes

Only the low octet of the enable vector is used: bit ``p`` (value ``1 << p``) enables priority
``p``. Times are in quanta of 512 bit times; an enabled priority with time 0 is XON.
scapy's contrib ``mac_control`` also binds EtherType 0x8808; this module does not load it.
"""

from __future__ import annotations

from scapy.data import ETHER_TYPES
from scapy.fields import ShortField, XShortField
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw, bind_layers

from pyctl import constants as C
from pyctl.errors import PacketError

PFC_ETHERTYPE = C.PFC_ETHERTYPE
PFC_OPCODE = C.PFC_OPCODE
PFC_DST_MAC = ":".join(f"{b:02x}" for b in C.PFC_DST_MAC.to_bytes(6, "big"))  # scapy's form
PFC_PAUSE_MAX = C.PFC_PAUSE_MAX
PFC_MIN_PAYLOAD = 46
PFC_PRIORITIES = 8

ETHER_TYPES[PFC_ETHERTYPE] = "MAC_CONTROL"


class PFC(Packet):
    """PFC frame body; padded with zeros to the 46-byte minimum Ethernet payload on build."""

    name = "PFC (802.1Qbb)"
    fields_desc = [
        XShortField("opcode", PFC_OPCODE),
        XShortField("class_enable", 0),
        *[ShortField(f"time{p}", 0) for p in range(PFC_PRIORITIES)],
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: object, **kargs: object) -> type:
        # Other MAC Control opcodes (802.3x PAUSE 0x0001, EPON ...) are not PFC.
        if _pkt and len(_pkt) >= 2 and int.from_bytes(_pkt[:2], "big") != PFC_OPCODE:
            return Raw
        return cls

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if not pay and len(pkt) < PFC_MIN_PAYLOAD:
            pkt += bytes(PFC_MIN_PAYLOAD - len(pkt))
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def pause_time(self, priority: int) -> int:
        """Pause time of `priority` (whether or not its enable bit is set)."""
        if not 0 <= priority < PFC_PRIORITIES:
            raise PacketError(f"PFC priority {priority!r} is not in 0..7")
        return int(getattr(self, f"time{priority}"))

    def paused(self) -> dict[int, int]:
        """Enabled priorities and their pause times (0 = XON)."""
        enable = int(self.class_enable)
        return {p: self.pause_time(p) for p in range(PFC_PRIORITIES) if enable & (1 << p)}


def pfc_frame(src_mac: str, pause: dict[int, int]) -> Packet:
    """Ether / PFC frame pausing each priority of `pause` for its time ({3: 0} = XON for 3)."""
    fields: dict[str, int] = {}
    enable = 0
    for priority, quanta in pause.items():
        if not 0 <= priority < PFC_PRIORITIES:
            raise PacketError(f"PFC priority {priority!r} is not in 0..7")
        if not 0 <= quanta <= PFC_PAUSE_MAX:
            raise PacketError(f"PFC pause time {quanta!r} for priority {priority} is not 0..65535")
        enable |= 1 << priority
        fields[f"time{priority}"] = quanta
    body = PFC(class_enable=enable)
    for name, quanta in fields.items():
        body.setfieldval(name, quanta)
    return Ether(dst=PFC_DST_MAC, src=src_mac, type=PFC_ETHERTYPE) / body


bind_layers(Ether, PFC, type=PFC_ETHERTYPE)
