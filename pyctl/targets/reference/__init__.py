"""The pure-Python reference data plane: docs/pipeline.md made executable, on bytes.

It is the oracle the eBPF and P4 data planes are compared with, so it favours the obvious over
the fast: each behaviour is a short function in the module of its feature (`frame`, `srv6`,
`apn`, `elephant`, `ifit`, `congestion`, `fib`), and `pipeline` calls them in the page's order.
"""

from pyctl.targets.reference.pipeline import ReferenceDataPlane

__all__ = ["ReferenceDataPlane"]
