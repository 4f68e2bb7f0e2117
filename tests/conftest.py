"""Suite-wide: what this machine has, said once in the header; `needs_kernel` skips with a reason.

Kernels differ between machines (seg6, netem, VRF, fq_codel, ioam6 come and go), and BMv2/p4c are
optional. A test that needs a kernel feature says so with `@pytest.mark.needs_kernel("netem")`:
where the feature is absent it skips with one line naming the missing option; where it is present
it runs and must pass. Nothing is assumed either way.
"""

from __future__ import annotations

import pytest

from pyctl import kernelfeatures, toolchain


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [toolchain.report(), f"icpn {kernelfeatures.summary()}"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_kernel"):
        for name in mark.args:
            reason = kernelfeatures.missing(name)
            if reason is not None:
                pytest.skip(reason)
