"""pyctl.packets, the APN option and its parameters (SPEC §2): bytes written by hand,
dissection, validation messages, configurable option type and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packet_bytes import frame, h
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether

from pyctl.errors import PacketError
from pyctl.packets import (
    APN_PARA_BANDWIDTH,
    APN_PARA_JITTER,
    APN_PARA_LATENCY,
    APN_PARA_LOSS,
    SRHTLVAPN,
    APNOption,
    apn_groups,
    apn_id_from_groups,
    register_apn_option_type,
    unregister_apn_option_type,
    validate_apn,
    validate_packet,
)

# ---------------------------------------------------------------- APN (SPEC §2)

# APN option, 32-bit APN-ID APP 7 | USER 1, bandwidth 1000 kbit/s and loss 50 ppm.
APN_32 = h(
    """
    1e 10          # option type 0x1E, Opt Data Len 16
    01 00          # APN-ID-Type 1 (32-bit), Flags 0
    90 00          # APN-Para-Type: bit 0 (bandwidth) + bit 3 (loss)
    00 07 00 01    # APN-ID = APP 7 | USER 1
    00 00 03 e8    # bandwidth 1000
    00 00 00 32    # loss 50
    """
)


def test_apn_para_masks_follow_bit0_is_msb() -> None:
    assert (APN_PARA_BANDWIDTH, APN_PARA_LATENCY, APN_PARA_JITTER, APN_PARA_LOSS) == (
        0x8000,
        0x4000,
        0x2000,
        0x1000,
    )


def test_apn_option_32bit_bytes() -> None:
    opt = APNOption(
        apn_id=apn_id_from_groups(7, 1),
        para_type=APN_PARA_BANDWIDTH | APN_PARA_LOSS,
        params=[1000, 50],
    )
    assert bytes(opt) == APN_32


def test_apn_option_in_hbh_dissects_from_ether() -> None:
    # HBH: Next Header 59, Hdr Ext Len 2 (24 bytes), the 18-byte option, PadN of 4.
    hbh = h("3b 02") + APN_32 + h("01 02 00 00")
    raw = frame(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0, plen=len(hbh))) + hbh
    opt = Ether(raw)[IPv6ExtHdrHopByHop].options[0]
    assert isinstance(opt, APNOption)
    assert (opt.otype, opt.optlen, opt.id_type, opt.apn_id) == (0x1E, 16, 1, 0x00070001)
    assert (opt.app_group, opt.user_group) == (7, 1)
    assert opt.params == [1000, 50]
    assert opt.param_map() == {APN_PARA_BANDWIDTH: 1000, APN_PARA_LOSS: 50}
    built = frame(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop(options=[opt]))
    assert built == raw
    assert validate_packet(raw) == []


def test_apn_option_in_destination_options() -> None:
    raw = frame(IPv6() / IPv6ExtHdrDestOpt(options=[APNOption(apn_id=9)]) / UDP())
    assert Ether(raw)[IPv6ExtHdrDestOpt].options[0].apn_id == 9


def test_apn_wide_ids_and_group_split() -> None:
    # 64-bit: APP 32 | USER 16 | Reserved 16.
    apn64 = apn_id_from_groups(0x0A0B0C0D, 0x0102, id_type=2)
    assert apn64 == 0x0A0B0C0D_0102_0000
    assert bytes(APNOption(id_type=2, apn_id=apn64)) == h("1e 0c 02 00 0000 0a0b0c0d 0102 0000")
    # 128-bit: APP 64 | USER 32 | Reserved 32.
    apn128 = apn_id_from_groups(0x0102030405060708, 0x090A0B0C, id_type=3)
    raw = h("1e 18 03 00 4000 0102030405060708 090a0b0c 00000000 0000 0005")
    assert bytes(APNOption(id_type=3, apn_id=apn128, para_type=APN_PARA_LATENCY, params=[5])) == (
        raw
    )
    opt = IPv6ExtHdrHopByHop(h("3b 03") + raw + h("01 02 0000")).options[0]
    assert (opt.app_group, opt.user_group) == (0x0102030405060708, 0x090A0B0C)
    assert opt.param_map() == {APN_PARA_LATENCY: 5}
    assert apn_groups(0xFFFF0001) == (0xFFFF, 1)


def test_apn_bad_values_name_the_field() -> None:
    with pytest.raises(PacketError, match="APP-Group-ID 65536"):
        apn_id_from_groups(0x10000, 1)
    with pytest.raises(PacketError, match="USER-Group-ID -1"):
        apn_id_from_groups(1, -1)
    with pytest.raises(PacketError, match="id_type 4"):
        apn_id_from_groups(1, 1, id_type=4)
    with pytest.raises(PacketError, match="apn_id 0x100000000"):
        bytes(APNOption(apn_id=1 << 32))
    with pytest.raises(PacketError, match="id_type 7"):
        bytes(APNOption(id_type=7, apn_id=1))


def test_apn_configurable_option_type() -> None:
    raw = frame(IPv6() / IPv6ExtHdrHopByHop(options=[APNOption(otype=0x3E, apn_id=0x50001)]))
    assert not isinstance(Ether(raw)[IPv6ExtHdrHopByHop].options[0], APNOption)
    register_apn_option_type(0x3E)
    try:
        opt = Ether(raw)[IPv6ExtHdrHopByHop].options[0]
        assert isinstance(opt, APNOption)
        assert (opt.otype, opt.app_group, opt.user_group) == (0x3E, 5, 1)
    finally:
        unregister_apn_option_type(0x3E)
    with pytest.raises(PacketError, match="IOAMTraceOption"):
        register_apn_option_type(0x31)


def test_apn_validation_messages() -> None:
    good = APN_32
    assert validate_apn(good) == []
    one_param_missing = h("1e 0c 01 00 9000 00070001 000003e8")
    assert validate_apn(one_param_missing) == [
        "APN-Para-Type 0x9000 announces 2 parameter(s) but the value carries 1"
    ]
    assert "APN-ID-Type 9 is not 1" in validate_apn(h("1e 04 09 00 0000"))[0]
    assert validate_apn(h("1e 06 02 00 0000 1234")) == [
        "APN-ID-Type 2 needs a 8-byte APN-ID but 2 byte(s) follow"
    ]
    assert "overruns" in validate_apn(good[:-3])[0]
    assert "not a multiple of 4" in validate_apn(h("1e 0a 01 00 8000 00000001 0000"))[0]


@settings(max_examples=200, deadline=None)
@given(
    id_type=st.sampled_from([1, 2, 3]),
    flags=st.integers(0, 255),
    para_type=st.integers(0, 0xFFFF),
    data=st.data(),
)
def test_apn_round_trip(id_type: int, flags: int, para_type: int, data: st.DataObject) -> None:
    bits = {1: 32, 2: 64, 3: 128}[id_type]
    apn_id = data.draw(st.integers(0, (1 << bits) - 1))
    params = data.draw(
        st.lists(
            st.integers(0, 0xFFFFFFFF),
            min_size=para_type.bit_count(),
            max_size=para_type.bit_count(),
        )
    )
    opt = APNOption(id_type=id_type, flags=flags, para_type=para_type, apn_id=apn_id, params=params)
    back = IPv6ExtHdrHopByHop(bytes(IPv6ExtHdrHopByHop(options=[opt]))).options[0]
    assert (back.id_type, back.flags, back.para_type, back.apn_id, back.params) == (
        id_type,
        flags,
        para_type,
        apn_id,
        params,
    )
    assert validate_apn(bytes(opt)) == []
    tlv = SRHTLVAPN(
        bytes(SRHTLVAPN(id_type=id_type, apn_id=apn_id, para_type=para_type, params=params))
    )
    assert (tlv.apn_id, tlv.params) == (apn_id, params)
