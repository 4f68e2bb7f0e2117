"""Conformance vectors: load `tests/vectors/**/*.yaml`, run them on data planes, report a matrix.

vectors.py (the data and its loader), diff.py (comparing outputs), runner.py (running them on
planes), table.py (what `icpn vectors` prints).

A vector is a node configuration plus steps (input frame + context -> expected outputs or drop),
written by hand from SPEC.md and docs/pipeline.md. The format is documented in docs/vectors.md.
Every data plane that is available here runs every vector it supports; outputs are compared as a
multiset of (port, bytes), and a mismatch is reported field by field.
"""

from pyctl.conformance.diff import compare_step, field_diff
from pyctl.conformance.runner import Matrix, VectorResult, class_support, run_matrix, run_vector
from pyctl.conformance.table import (
    STATUSES,
    format_failures,
    format_table,
    format_totals,
    main,
    plane_totals,
)
from pyctl.conformance.vectors import (
    DROP_REASONS,
    Difference,
    ExpectedOutput,
    Step,
    Vector,
    load_vectors,
)

__all__ = [
    "DROP_REASONS",
    "STATUSES",
    "Difference",
    "ExpectedOutput",
    "Matrix",
    "Step",
    "Vector",
    "VectorResult",
    "class_support",
    "compare_step",
    "field_diff",
    "format_failures",
    "format_table",
    "format_totals",
    "load_vectors",
    "main",
    "plane_totals",
    "run_matrix",
    "run_vector",
]
