"""Comparing what a data plane produced with what a vector step expects: drop reason, and the
outputs as a multiset of (port, bytes), a mismatch reported layer by layer and field by field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from pyctl.conformance.vectors import Step
from pyctl.targets.base import Result

# ---------------------------------------------------------------------------------------------
# Comparing


def _layers(pkt: Any) -> list[Any]:
    from scapy.packet import NoPayload

    out = []
    while pkt is not None and not isinstance(pkt, NoPayload):
        out.append(pkt)
        pkt = pkt.payload
    return out


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_repr(fld: Any, pkt: Any, value: Any) -> str:
    if isinstance(value, bytes):
        return _short(value.hex() if value else "''")
    try:
        return _short(str(fld.i2repr(pkt, value)))
    # scapy's repr of a dissected value can trip on odd input; fall back to the raw value.
    except Exception:
        return _short(repr(value))


def _diff_values(label: str, fld: Any, pe: Any, pa: Any, ve: Any, va: Any, out: list[str]) -> None:
    from scapy.packet import Packet

    if isinstance(ve, Packet) and isinstance(va, Packet):
        _diff_layers(ve, va, label, out)
    elif (
        isinstance(ve, list)
        and isinstance(va, list)
        and all(isinstance(x, Packet) for x in ve + va)
        and ve
        and va
    ):
        for i in range(max(len(ve), len(va))):
            sub = f"{label}[{i}]"
            if i >= len(va):
                out.append(f"{sub}: expected {_short(repr(ve[i]))}, got nothing")
            elif i >= len(ve):
                out.append(f"{sub}: expected nothing, got {_short(repr(va[i]))}")
            else:
                _diff_layers(ve[i], va[i], sub, out)
    else:
        detail = ""
        if isinstance(ve, bytes) and isinstance(va, bytes):
            at = _first_difference(ve, va)
            detail = f" (first difference at byte {at} of the field)"
        out.append(
            f"{label}: expected {_value_repr(fld, pe, ve)}, got {_value_repr(fld, pa, va)}{detail}"
        )


def _diff_layers(e: Any, a: Any, prefix: str, out: list[str]) -> None:
    seen: Counter[str] = Counter()
    for le, la in zip(_layers(e), _layers(a), strict=False):
        ne, na = type(le).__name__, type(la).__name__
        seen[ne] += 1
        label = ne if seen[ne] == 1 else f"{ne}#{seen[ne]}"
        label = f"{prefix}.{label}" if prefix else label
        if ne != na:
            out.append(f"{label}: expected layer {ne}, got layer {na}")
            return
        for fld in le.fields_desc:
            ve, va = le.getfieldval(fld.name), la.getfieldval(fld.name)
            if ve != va:
                _diff_values(f"{label}.{fld.name}", fld, le, la, ve, va, out)
    le_all, la_all = _layers(e), _layers(a)
    if len(le_all) > len(la_all):
        extra = " / ".join(type(x).__name__ for x in le_all[len(la_all) :])
        out.append(f"{prefix or 'frame'}: expected further layers {extra}, got none")
    elif len(la_all) > len(le_all):
        extra = " / ".join(type(x).__name__ for x in la_all[len(le_all) :])
        out.append(f"{prefix or 'frame'}: got further layers {extra}, expected none")


def _first_difference(e: bytes, a: bytes) -> int:
    for i, (x, y) in enumerate(zip(e, a, strict=False)):
        if x != y:
            return i
    return min(len(e), len(a))


def _byte_diff(expected: bytes, actual: bytes) -> str:
    at = _first_difference(expected, actual)
    ex = f"0x{expected[at]:02x}" if at < len(expected) else "end of frame"
    ac = f"0x{actual[at]:02x}" if at < len(actual) else "end of frame"
    return (
        f"first differing byte at offset {at}: expected {ex}, got {ac} "
        f"(lengths: expected {len(expected)}, got {len(actual)})"
    )


def field_diff(expected: bytes, actual: bytes) -> list[str]:
    """Differences between two Ethernet frames, layer by layer and field by field.

    The last line always gives the first differing byte offset (the only line when scapy cannot
    dissect one of them).
    """
    from scapy.layers.l2 import Ether

    lines: list[str] = []
    try:
        _diff_layers(Ether(expected), Ether(actual), "", lines)
    # Dissection of a corrupt frame may raise anything; the byte offset below still locates it.
    except Exception as e:
        lines.append(f"(field diff unavailable: {type(e).__name__}: {e})")
    if expected != actual:
        lines.append(_byte_diff(expected, actual))
    return lines


def _summary(frame: bytes) -> str:
    from scapy.layers.l2 import Ether

    try:
        text = str(Ether(frame).summary())
    except Exception:  # a summary is best effort
        text = frame[:16].hex() + "..."
    return f"{len(frame)} bytes: {_short(text, 110)}"


def compare_step(
    step: Step,
    result: Result,
    exact_drop: bool = True,
    normalise: Callable[[bytes], bytes] | None = None,
) -> list[str]:
    """Problems with one step's result (empty when it matches).

    `exact_drop` False accepts any drop reason where a drop is expected (a plane that cannot say
    why it dropped); `normalise` maps expected and produced frames alike before comparing them
    (a plane that differs from SPEC by design in documented bytes).
    """
    norm = normalise if normalise is not None else bytes
    problems = []
    if step.drop is not None and result.drop is None:
        problems.append(f"expected drop {step.drop!r}, got no drop")
    elif step.drop is not None and exact_drop and result.drop != step.drop:
        problems.append(f"expected drop {step.drop!r}, got drop {result.drop!r}")
    elif step.drop is None and result.drop is not None:
        problems.append(f"expected no drop, got drop {result.drop!r}")
    expected = Counter((o.port, norm(o.frame)) for o in step.expect)
    actual = Counter((o.port, norm(bytes(o.frame))) for o in result.outputs)
    missing = list((expected - actual).elements())
    extra = list((actual - expected).elements())
    where = {(o.port, norm(o.frame)): o.where for o in step.expect}
    for port, frame in missing:
        best = _closest(port, frame, extra)
        label = where[(port, frame)]
        if best is None:
            problems.append(f"{label}: expected on port {port} ({_summary(frame)}), not produced")
            continue
        extra.remove(best)
        bport, bframe = best
        head = f"{label}: expected on port {port}, got on port {bport}"
        if bframe == frame:
            problems.append(f"{head}: same bytes, wrong port")
            continue
        problems.append(head + " a different frame:")
        problems += [f"    {line}" for line in field_diff(frame, bframe)]
    for port, frame in extra:
        problems.append(f"unexpected output on port {port} ({_summary(frame)})")
    return problems


def _closest(
    port: int, frame: bytes, candidates: list[tuple[int, bytes]]
) -> tuple[int, bytes] | None:
    """The produced output most likely meant to be `frame`: same port, then most bytes alike."""

    def score(c: tuple[int, bytes]) -> tuple[int, int]:
        same = sum(1 for x, y in zip(frame, c[1], strict=False) if x == y)
        return (c[0] == port, same - abs(len(frame) - len(c[1])))

    return max(candidates, key=score) if candidates else None
