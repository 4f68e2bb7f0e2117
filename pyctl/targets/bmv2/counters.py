"""The BMv2 program's IFIT counters as SPEC 3 counts them: per (FlowMonID, colour), packets and
bytes, the bytes being the carriers' IPv6 lengths.

A BMv2 counter adds the length of the frame as it was received (bm_sim counters.h), which is not
the length SPEC 3 counts, so ifit.p4 counts each length digit by digit: for each of its
`IFIT_LEN_DIGITS` base-16 digits, one packet in `ifit_len_digits` at cell
`index * IFIT_LEN_CELLS + 16 * position + value`. A cell's packets are then the packets of any one
position, and its bytes the sum of value x 16^position x packets over its digit cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyctl.p4rt import Switch
from pyctl.targets.bmv2 import codes


def cell(flowmon_id: int, colour: int) -> int:
    """The counter index of (FlowMonID, L). FlowMonIDs equal mod IFIT_COUNTER_FLOWS have one
    slot: the first one counted keeps it (`slot_keepers`), a packet of another is dropped
    p4-limit (docs/p4.md limits)."""
    return (flowmon_id % codes.IFIT_COUNTER_FLOWS) * 2 + colour


def from_digits(digits: Mapping[int, int]) -> tuple[int, int]:
    """(packets, bytes) of one counter index from its digit cells (offset -> packets, offset =
    16 * position + value)."""
    packets = sum(n for off, n in digits.items() if off < 16)
    nbytes = sum((off % 16) * 16 ** (off // 16) * n for off, n in digits.items())
    return packets, nbytes


def _digit_totals(
    switch: Switch, counter: str, indices: Iterable[int]
) -> dict[int, tuple[int, int]]:
    """Index -> (packets, value total) read back from `counter`'s digit cells (IFIT_LEN_CELLS per
    index, `from_digits`), for the indices that counted a packet. One read of their cells."""
    wanted = sorted(set(indices))
    n = codes.IFIT_LEN_CELLS
    got = switch.read_counter_cells(counter, (i * n + o for i in wanted for o in range(n)))
    out = {}
    for i in wanted:
        packets, total = from_digits({o: got.get(i * n + o, (0, 0))[0] for o in range(n)})
        if packets:
            out[i] = (packets, total)
    return out


def read_cells(switch: Switch, cells: Iterable[int] | None = None) -> dict[int, tuple[int, int]]:
    """Counter index -> (packets, bytes) of these indices, or of every index that counted a
    packet (found in `ifit_counts`) when None. One read of their digit cells."""
    if cells is None:
        cells = (i for i, (p, _) in switch.read_counter("ifit_counts").items() if p)
    return _digit_totals(switch, "ifit_len_digits", cells)


def slot_keepers(switch: Switch, slots: Iterable[int]) -> dict[int, int]:
    """Slot (FlowMonID % IFIT_COUNTER_FLOWS) -> the FlowMonID whose packets it counts, for the
    slots that have one: the keeper is counted once, digit by digit, into `ifit_slot_keeper`
    (ifit.p4 IfitSlot), so a slot's digit cells hold one packet per digit position."""
    return {s: fid for s, (_, fid) in _digit_totals(switch, "ifit_slot_keeper", slots).items()}


def ifit_counters(
    switch: Switch, flowmon_ids: Iterable[int]
) -> dict[tuple[int, int], tuple[int, int]]:
    """(FlowMonID, colour) -> (packets, bytes) of these FlowMonIDs that counted a packet. A
    FlowMonID whose slot another one keeps counted nothing here (its packets were dropped
    p4-limit), so it has no entry: the slot's counts are the keeper's."""
    ids = set(flowmon_ids)
    keepers = slot_keepers(switch, (f % codes.IFIT_COUNTER_FLOWS for f in ids))
    keys = {
        (f, c): cell(f, c)
        for f in ids
        if keepers.get(f % codes.IFIT_COUNTER_FLOWS) == f
        for c in (0, 1)
    }
    got = read_cells(switch, keys.values())
    return {k: got[i] for k, i in keys.items() if i in got}
