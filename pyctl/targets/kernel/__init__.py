"""The Linux kernel's seg6 / seg6local as a data plane (an outside oracle for SRv6)."""

from pyctl.targets.kernel.plan import KernelUnsupported
from pyctl.targets.kernel.plane import DEFAULT_PREFIX, KernelDataPlane, cleanup_stale
from pyctl.targets.kernel.probe import KernelCaps, probe

__all__ = [
    "DEFAULT_PREFIX",
    "KernelCaps",
    "KernelDataPlane",
    "KernelUnsupported",
    "cleanup_stale",
    "probe",
]
