"""The BMv2 data plane: p4/icpn.p4 on simple_switch_grpc, programmed over P4Runtime.

`BMv2DataPlane` is imported lazily so that `python -m pyctl.targets.bmv2.codes` (run by the P4
build) needs neither gRPC nor the P4Runtime bindings.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "BMv2DataPlane":
        from pyctl.targets.bmv2.dataplane import BMv2DataPlane

        return BMv2DataPlane
    raise AttributeError(name)
