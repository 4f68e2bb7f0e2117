"""APN ID (SPEC §2): IPv6 Hop-by-Hop / Destination option and the shared value layout.

Value layout, same in the option and in the SRH TLV (`pyctl.packets.srh.SRHTLVAPN`)::

    APN-ID-Type(8) | Flags(8) | APN-Para-Type(16) | APN-ID(32, 64 or 128) | parameters(32 each)

APN-Para-Type is a bitmap numbered as everywhere in SPEC.md, bit 0 = most significant bit, so
the masks are ``APN_PARA_BANDWIDTH = 0x8000`` (bit 0, kbit/s), ``APN_PARA_LATENCY = 0x4000``
(bit 1, µs), ``APN_PARA_JITTER = 0x2000`` (bit 2, µs) and ``APN_PARA_LOSS = 0x1000`` (bit 3, ppm).
Each set bit, known or not, appends one 32-bit parameter in bit order (bit 0 first).

APN-ID = APP-Group-ID | USER-Group-ID | Reserved, split by APN-ID-Type:

    ========  =====  ======  ========
    id_type   APP    USER    Reserved
    1 (32)    16     16      0
    2 (64)    32     16      16
    3 (128)   64     32      32
    ========  =====  ======  ========

SPEC fixes only the 32-bit split; the wider splits are this project's choice.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from scapy.fields import (
    ByteEnumField,
    ByteField,
    Field,
    FieldListField,
    FlagsField,
    IntField,
    StrField,
    XByteField,
)
from scapy.layers.inet6 import _hbhoptcls, _hbhopts, _OTypeField
from scapy.packet import Packet

from pyctl.errors import PacketError
from pyctl.packets._tlv import _BoundedTLV

APN_OPTION_TYPE = 0x1E
"""Default option type: RFC 4727 experimental, skip if unknown, does not change en route."""

APN_ID_TYPE_32 = 1
APN_ID_TYPE_64 = 2
APN_ID_TYPE_128 = 3

APN_ID_WIDTH: MappingProxyType[int, int] = MappingProxyType(
    {APN_ID_TYPE_32: 4, APN_ID_TYPE_64: 8, APN_ID_TYPE_128: 16}
)
"""APN-ID-Type -> APN-ID width in bytes."""

APN_GROUP_SPLIT: MappingProxyType[int, tuple[int, int, int]] = MappingProxyType(
    {APN_ID_TYPE_32: (16, 16, 0), APN_ID_TYPE_64: (32, 16, 16), APN_ID_TYPE_128: (64, 32, 32)}
)
"""APN-ID-Type -> (APP-Group-ID bits, USER-Group-ID bits, Reserved bits)."""

APN_PARA_BANDWIDTH = 0x8000
APN_PARA_LATENCY = 0x4000
APN_PARA_JITTER = 0x2000
APN_PARA_LOSS = 0x1000

APN_VALUE_MIN_LEN = 4
"""APN-ID-Type, Flags and APN-Para-Type: the bytes every APN value has before the APN-ID."""

# FlagsField names are listed from the least significant bit up.
_PARA_NAMES = [f"bit{15 - i}" for i in range(12)] + ["loss", "jitter", "latency", "bandwidth"]
_ID_TYPE_NAMES = {APN_ID_TYPE_32: "32-bit", APN_ID_TYPE_64: "64-bit", APN_ID_TYPE_128: "128-bit"}


def _split(id_type: int) -> tuple[int, int, int]:
    try:
        return APN_GROUP_SPLIT[id_type]
    except KeyError:
        raise PacketError(
            f"APN id_type {id_type!r} is not 1 (32-bit), 2 (64-bit) or 3 (128-bit)"
        ) from None


def apn_id_from_groups(app: int, user: int, id_type: int = APN_ID_TYPE_32) -> int:
    """Compose an APN-ID from its APP-Group-ID and USER-Group-ID (Reserved bits zero)."""
    app_bits, user_bits, res_bits = _split(id_type)
    if not 0 <= app < 1 << app_bits:
        raise PacketError(f"APP-Group-ID {app!r} does not fit {app_bits} bits (id_type {id_type})")
    if not 0 <= user < 1 << user_bits:
        raise PacketError(
            f"USER-Group-ID {user!r} does not fit {user_bits} bits (id_type {id_type})"
        )
    return (app << (user_bits + res_bits)) | (user << res_bits)


def apn_groups(apn_id: int, id_type: int = APN_ID_TYPE_32) -> tuple[int, int]:
    """Split an APN-ID into (APP-Group-ID, USER-Group-ID)."""
    app_bits, user_bits, res_bits = _split(id_type)
    return (apn_id >> (user_bits + res_bits)) & ((1 << app_bits) - 1), (apn_id >> res_bits) & (
        (1 << user_bits) - 1
    )


def para_count(para_type: int) -> int:
    """Number of 32-bit parameters that an APN-Para-Type bitmap announces."""
    return int(para_type).bit_count()


class _APNIDField(Field[int | None, int]):
    """The APN-ID: 4, 8 or 16 bytes as the packet's ``id_type`` says (absent if unknown)."""

    def __init__(self, name: str, default: int | None) -> None:
        super().__init__(name, default, fmt="!I")

    @staticmethod
    def _width(pkt: Packet | None) -> int:
        if pkt is None:
            return 4
        return APN_ID_WIDTH.get(int(pkt.id_type), 0)

    def addfield(self, pkt: Packet, s: bytes, val: int | None) -> bytes:
        width = self._width(pkt)
        if width == 0:
            if val is None:
                return s
            _split(int(pkt.id_type))  # raises with the offending id_type
        v = 0 if val is None else int(val)
        if not 0 <= v < 1 << (8 * width):
            raise PacketError(
                f"apn_id {v:#x} does not fit the {8 * width}-bit APN-ID of id_type {pkt.id_type}"
            )
        return s + v.to_bytes(width, "big")

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, int | None]:
        width = self._width(pkt)
        if width == 0:
            return s, None
        if len(s) < width:
            raise PacketError(f"APN value truncated: APN-ID needs {width} bytes, {len(s)} left")
        return s[width:], int.from_bytes(s[:width], "big")

    def i2len(self, pkt: Packet | None, x: Any) -> int:
        return self._width(pkt)

    def i2repr(self, pkt: Packet | None, x: int | None) -> str:
        if x is None:
            return "None"
        return f"{x:#0{2 + 2 * max(self._width(pkt), 1)}x}"


def _param_count_from(pkt: Packet) -> int:
    return max(0, pkt.value_len() - APN_VALUE_MIN_LEN - APN_ID_WIDTH.get(int(pkt.id_type), 0)) // 4


def apn_value_fields() -> list[Any]:
    """Fresh field instances for the APN value (each layer needs its own)."""
    return [
        ByteEnumField("id_type", APN_ID_TYPE_32, _ID_TYPE_NAMES),
        XByteField("flags", 0),
        FlagsField("para_type", 0, 16, _PARA_NAMES),
        _APNIDField("apn_id", 0),
        # Dissected count follows the length field, not the bitmap, so a mismatch stays visible
        # (validate.validate_apn reports it).
        FieldListField("params", [], IntField("param", 0), count_from=_param_count_from),
        # Bytes inside the length that no field describes (a malformed value): kept, not lost.
        StrField("trailing", b""),
    ]


class _APNValue(_BoundedTLV):
    """Accessors shared by the APN option and the APN SRH TLV."""

    _len_field = "optlen"

    def value_len(self) -> int:
        """Length of the value as the length field says (what dissection is bounded by)."""
        return int(self.getfieldval(self._len_field) or 0)

    @property
    def app_group(self) -> int:
        """APP-Group-ID of the APN-ID (split per APN_GROUP_SPLIT)."""
        return apn_groups(int(self.apn_id or 0), int(self.id_type))[0]

    @property
    def user_group(self) -> int:
        """USER-Group-ID of the APN-ID (split per APN_GROUP_SPLIT)."""
        return apn_groups(int(self.apn_id or 0), int(self.id_type))[1]

    def param_map(self) -> dict[int, int]:
        """Parameters keyed by their APN-Para-Type mask (e.g. APN_PARA_BANDWIDTH), in bit order."""
        masks = [1 << (15 - bit) for bit in range(16) if int(self.para_type) & (1 << (15 - bit))]
        return dict(zip(masks, self.params, strict=False))

    def _patch_len(self, pkt: bytes) -> bytes:
        if self.getfieldval(self._len_field) is not None:
            return pkt
        if len(pkt) - 2 > 255:
            raise PacketError(
                f"{self.name}: value of {len(pkt) - 2} bytes does not fit the 8-bit length"
            )
        return pkt[:1] + bytes([len(pkt) - 2]) + pkt[2:]


_hbhopts[APN_OPTION_TYPE] = "APN"


class APNOption(_APNValue):
    """APN ID carried as an IPv6 Hop-by-Hop or Destination option (SPEC §2).

    ``otype`` defaults to 0x1E but any type may be used; call `register_apn_option_type` so
    that dissection recognises a non-default one. ``optlen`` is computed when left None.
    """

    name = "APN ID Option"
    fields_desc = [
        _OTypeField("otype", APN_OPTION_TYPE, _hbhopts),
        ByteField("optlen", None),
        *apn_value_fields(),
    ]

    def alignment_delta(self, curpos: int) -> int:
        # SPEC §2 sets no alignment: the option goes where it is, no PadN before it.
        return 0

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        return self._patch_len(pkt) + pay


def register_apn_option_type(otype: int) -> None:
    """Make HBH / Destination option type `otype` dissect as `APNOption` (0x1E is registered)."""
    if not 2 <= otype <= 0xFF:
        raise PacketError(f"APN option type {otype!r} is not in 2..255 (0 and 1 are Pad1/PadN)")
    current = _hbhoptcls.get(otype)
    if current is not None and current is not APNOption:
        raise PacketError(
            f"APN option type {otype:#04x} is already the option type of {current.__name__}"
        )
    _hbhoptcls[otype] = APNOption
    _hbhopts.setdefault(otype, "APN")


def unregister_apn_option_type(otype: int) -> None:
    """Stop dissecting option type `otype` as `APNOption` (it becomes an unknown option)."""
    if _hbhoptcls.get(otype) is not APNOption:
        raise PacketError(f"option type {otype!r} is not registered as an APN option type")
    del _hbhoptcls[otype]


def apn_option_types() -> list[int]:
    """Option types that currently dissect as `APNOption`."""
    return sorted(t for t, cls in _hbhoptcls.items() if cls is APNOption)


register_apn_option_type(APN_OPTION_TYPE)
