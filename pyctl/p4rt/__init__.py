"""P4Runtime client of ICPN: many switches, names resolved through the P4Info.

from pyctl.p4rt import P4Info, Switch, TableEntry, LPM

sw = Switch("s1", "127.0.0.1:9559", device_id=0)
sw.connect()                                   # channel, stream, primary arbitration
sw.set_pipeline("p4/build/icpn.p4info.txt", Path("p4/build/icpn.json"))
sw.insert([TableEntry("my_sid", {"sid": LPM("fc00:1::", 48)}, "end",
                      {"psp": 0, "csid": 0, "block": 0, "arg": 0, "csid_bits": 0})])

Names are imported on first use (PEP 562), so that the CLI, which registers `icpn shell`
at start-up, does not need gRPC or the P4Runtime bindings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyctl.p4rt.client import Digest, P4RuntimeController, PacketIn, Switch, Update
    from pyctl.p4rt.entities import (
        LPM,
        ActionProfileGroup,
        ActionProfileMember,
        CloneSession,
        Codec,
        CounterEntry,
        Entity,
        Exact,
        MulticastGroup,
        Optional,
        Range,
        TableEntry,
        Ternary,
        describe,
    )
    from pyctl.p4rt.errors import NotPrimaryError, P4InfoError, P4RuntimeError
    from pyctl.p4rt.p4info import P4Info

__all__ = [
    "LPM",
    "ActionProfileGroup",
    "ActionProfileMember",
    "CloneSession",
    "Codec",
    "CounterEntry",
    "Digest",
    "Entity",
    "Exact",
    "MulticastGroup",
    "NotPrimaryError",
    "Optional",
    "P4Info",
    "P4InfoError",
    "P4RuntimeController",
    "P4RuntimeError",
    "PacketIn",
    "Range",
    "Switch",
    "TableEntry",
    "Ternary",
    "Update",
    "describe",
]

_HOME = {
    **dict.fromkeys(["Digest", "P4RuntimeController", "PacketIn", "Switch", "Update"], "client"),
    **dict.fromkeys(["NotPrimaryError", "P4InfoError", "P4RuntimeError"], "errors"),
    "P4Info": "p4info",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'pyctl.p4rt' has no attribute {name!r}")
    module = importlib.import_module(f"pyctl.p4rt.{_HOME.get(name, 'entities')}")
    return getattr(module, name)
