"""The eBPF plane against the Linux kernel's seg6 / seg6local (the outside oracle).

The hand-written cases of tests/kernel_oracle_cases.py (expected bytes from SPEC.md / RFC 8986)
are pushed through icpn_node: it must produce the expected bytes (and the drop reason the case
names), and the same outputs as the kernel, normalised only as docs/kernel-oracle.md documents.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_oracle_cases import CASES, actual_outputs, expected_outputs, explain
from kernel_oracle_rig import CAPS, PREFIX, Case, _node

from pyctl.model.node import PacketContext
from pyctl.targets.base import DataPlane, Result
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.targets.kernel import KernelDataPlane

pytestmark = [pytest.mark.root, pytest.mark.kernel]


class Planes:
    """One configured plane per (kind, node), made on first use."""

    def __init__(self) -> None:
        self.planes: dict[tuple[str, str], DataPlane] = {}

    def run(self, kind: str, case: Case) -> Result:
        key = (kind, case.node)
        if kind == "kernel" and CAPS.problem is not None:
            pytest.skip(f"kernel plane: {CAPS.problem}")  # the eBPF-only cases still run
        if key not in self.planes:
            plane: DataPlane = EBPFDataPlane() if kind == "ebpf" else KernelDataPlane(prefix=PREFIX)
            self.planes[key] = plane
            plane.configure(_node(case.node))
        return self.planes[key].process(bytes(case.packet), PacketContext(in_port=case.in_port))

    def close(self) -> None:
        for plane in self.planes.values():
            plane.close()


@pytest.fixture(scope="module")
def planes() -> Iterator[Planes]:
    p = Planes()
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ebpf_matches_spec(planes: Planes, case: Case) -> None:
    res = planes.run("ebpf", case)
    if case.drop is not None:
        assert res.drop == case.drop and not res.outputs, explain("ebpf", case, res)
    else:
        assert not res.dropped, explain("ebpf", case, res)
        assert actual_outputs(res, case) == expected_outputs(case), explain("ebpf", case, res)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ebpf_agrees_with_kernel(planes: Planes, case: Case) -> None:
    e, k = planes.run("ebpf", case), planes.run("kernel", case)
    assert e.dropped == k.dropped, f"ebpf drop={e.drop!r}, kernel drop={k.drop!r}"
    assert actual_outputs(e, case) == actual_outputs(k, case), explain("ebpf", case, e)
