"""The eBPF data plane (XDP/tc programs in ebpf/, loaded with libbpf through ctypes)."""

from pyctl.targets.ebpf.dataplane import EBPFDataPlane

__all__ = ["EBPFDataPlane"]
