"""Data planes (targets) that run a node: reference model, eBPF, BMv2, the kernel's seg6."""

from __future__ import annotations

import importlib

from pyctl.errors import DataPlaneUnavailable
from pyctl.targets.base import DataPlane, Output, Result

# name -> "module:Class"; imported lazily so a missing optional dependency only affects its plane.
DATAPLANES: dict[str, str] = {
    "reference": "pyctl.targets.reference:ReferenceDataPlane",
    "ebpf": "pyctl.targets.ebpf:EBPFDataPlane",
    "kernel": "pyctl.targets.kernel:KernelDataPlane",
    "bmv2": "pyctl.targets.bmv2:BMv2DataPlane",
}


def dataplane_class(name: str) -> type[DataPlane]:
    try:
        module_name, cls_name = DATAPLANES[name].split(":")
    except KeyError:
        known = ", ".join(DATAPLANES)
        raise DataPlaneUnavailable(f"unknown data plane {name!r} (known: {known})") from None
    cls: type[DataPlane] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def open_dataplane(name: str) -> DataPlane:
    """Instantiate a data plane by name, or raise `DataPlaneUnavailable` saying why not."""
    cls = dataplane_class(name)
    reason = cls.unavailable()
    if reason is not None:
        raise DataPlaneUnavailable(f"{name}: {reason}")
    return cls()


__all__ = ["DATAPLANES", "DataPlane", "Output", "Result", "dataplane_class", "open_dataplane"]
