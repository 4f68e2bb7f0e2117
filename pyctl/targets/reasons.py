"""Drop reasons: the integer codes of `pyctl.constants` and the names `Result.drop` carries.

Every data plane uses this one table: the eBPF and P4 programs report the integer code (rendered
into their headers from `pyctl.constants`), the Python side turns it into the name that
docs/pipeline.md uses.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyctl import constants as C

DROP_REASONS: dict[int, str] = {
    C.DROP_NOT_IP: "not-ip",
    C.DROP_BAD_IPV6: "bad-ipv6",
    C.DROP_BAD_IPV4: "bad-ipv4",
    C.DROP_BAD_EXTHDR: "bad-exthdr",
    C.DROP_BAD_SRH: "bad-srh",
    C.DROP_BAD_SRH_LE: "bad-srh-le",
    C.DROP_BAD_SRH_SL: "bad-srh-sl",
    C.DROP_HOP_LIMIT: "hop-limit",
    C.DROP_SL_ZERO: "sl-zero",
    C.DROP_SL_NONZERO: "sl-nonzero",
    C.DROP_NO_SRH: "no-srh",
    C.DROP_BAD_INNER: "bad-inner",
    C.DROP_NO_ROUTE: "no-route",
    C.DROP_ECN_NOT_ECT_CE: "ecn-not-ect-ce",
    C.DROP_PFC_CONSUMED: "pfc-consumed",
    C.DROP_PFC_HELD: "pfc-held",
    C.DROP_TOO_BIG: "too-big",
    C.DROP_NOT_FOR_ME: "not-for-me",
    C.DROP_LINK_LOCAL: "link-local",
    C.DROP_SID_LOOP: "sid-loop",
}

DROP_CODES: dict[str, int] = {name: code for code, name in DROP_REASONS.items()}

# Reasons a data plane reports beyond the contract's, under codes of its own (the eBPF node's
# are in pyctl/targets/ebpf/maps.py): never in DROP_REASONS, never a conformance vector's
# expectation. INTERNAL_ERROR: a helper or a write failed on a packet the contract handles (the
# node's fault, not the input's); QUEUE_FULL: live only, the egress port's queue is full.
INTERNAL_ERROR = "internal-error"
QUEUE_FULL = "queue-full"


def reason_name(code: int, own: Mapping[int, str] | None = None) -> str:
    """The name of a drop code, e.g. 13 -> "no-route", or of a data plane's `own` code; an
    unknown code names itself."""
    if code in DROP_REASONS:
        return DROP_REASONS[code]
    if own and code in own:
        return own[code]
    return f"unknown-{code}"


def reason_code(name: str) -> int:
    """The code of a drop reason name; KeyError names the unknown reason."""
    try:
        return DROP_CODES[name]
    except KeyError:
        raise KeyError(f"unknown drop reason {name!r} (known: {', '.join(DROP_CODES)})") from None
