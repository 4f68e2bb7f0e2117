"""Running vectors on data planes: one vector on one plane (`run_vector`), or a matrix.

A documented difference (`Difference`) is held strictly: the plane must produce exactly the
documented outcome at the listed steps and SPEC's everywhere else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyctl.conformance.diff import compare_step
from pyctl.conformance.vectors import Difference, Vector
from pyctl.errors import DataPlaneUnavailable
from pyctl.targets import dataplane_class, open_dataplane
from pyctl.targets.base import DataPlane


@dataclass(frozen=True)
class VectorResult:
    vector: str
    dataplane: str
    status: str  # "pass" | "FAIL" | "skip" | "differs" (a documented difference, still true)
    detail: str = ""  # the diff for FAIL, the reason for skip or differs


@dataclass
class Matrix:
    vectors: list[Vector]
    dataplanes: list[str]
    results: dict[tuple[str, str], VectorResult] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results.values() if r.status == status)

    @property
    def failed(self) -> bool:
        return self.count("FAIL") > 0


# ---------------------------------------------------------------------------------------------
# Running


def _supports_reason(target: type[DataPlane] | DataPlane, covers: tuple[str, ...]) -> str | None:
    supports = getattr(target, "supports", None)
    if supports is None or not callable(supports):
        return None
    reason = supports(list(covers))
    return None if reason is None else str(reason)


def _is_class_level(cls: type[DataPlane], name: str) -> bool:
    return isinstance(inspect.getattr_static(cls, name, None), classmethod | staticmethod)


def class_support(cls: type[DataPlane], covers: tuple[str, ...] | list[str]) -> str | None:
    """Why `cls` declares, without an instance, that it cannot run these features (else None)."""
    if not _is_class_level(cls, "supports"):
        return None
    return _supports_reason(cls, tuple(covers))


def run_vector(
    vec: Vector, dataplane_name: str, factory: Callable[[], DataPlane] | None = None
) -> VectorResult:
    """Run a vector's steps in order on a freshly configured instance of the named data plane.

    `factory` builds the instance instead of `open_dataplane` (tests use it to pass constructor
    arguments such as a namespace prefix).
    """

    def result(status: str, detail: str = "") -> VectorResult:
        return VectorResult(vec.name, dataplane_name, status, detail)

    try:
        cls = dataplane_class(dataplane_name)
    except ImportError as e:
        return result("skip", f"cannot import the data plane: {e}")
    except DataPlaneUnavailable as e:
        return result("skip", str(e))
    reason = cls.unavailable() or class_support(cls, vec.covers)
    if reason is not None:
        return result("skip", reason)
    try:
        dp = factory() if factory is not None else open_dataplane(dataplane_name)
    except DataPlaneUnavailable as e:
        return result("skip", str(e))
    try:
        if not _is_class_level(cls, "supports"):
            reason = _supports_reason(dp, vec.covers)
            if reason is not None:
                return result("skip", reason)
        return _run_steps(vec, dp, result, vec.difference(dataplane_name))
    finally:
        dp.close()


def _run_steps(vec: Vector, dp: DataPlane, result: Any, known: Difference | None) -> VectorResult:
    # Optional hooks of a data plane (see docs/vectors.md): drop reasons it cannot report, and
    # bytes it is documented to produce differently.
    exact_drop = bool(getattr(dp, "exact_drop_reasons", True))
    hook = getattr(dp, "comparable", None)
    normalise = (lambda frame: bytes(hook(frame, vec.node))) if callable(hook) else None
    # A data plane that raises is failing this vector; the runner must go on with the others.
    try:
        dp.configure(vec.node)
    except DataPlaneUnavailable as e:
        return result("skip", str(e))
    except Exception as e:
        return result("FAIL", f"configure raised {type(e).__name__}: {e}")
    for step in vec.steps:
        head = f"step {step.index} (in_port {step.in_port}"
        head += f", {step.note})" if step.note else ")"
        try:
            res = dp.process(step.frame, step.context())
        except DataPlaneUnavailable as e:
            # the plane met a part of the node it cannot run (e.g. the kernel without a VRF)
            return result("skip", f"{head}: {e}")
        except Exception as e:
            return result("FAIL", f"{head}: process raised {type(e).__name__}: {e}")
        alternative = known.at(step.index) if known is not None else None
        problems = compare_step(step, res, exact_drop, normalise)
        if known is not None and alternative is not None:
            if not problems:
                return result(
                    "FAIL",
                    f"{head}: matches SPEC, so the documented difference of {known.plane}"
                    f" no longer holds; mend or remove it: {known.why}",
                )
            # the plane must differ exactly as documented: same drop, same output bytes
            problems = compare_step(alternative, res, exact_drop, normalise)
            if problems:
                problems = [f"differs from SPEC, but not as documented ({known.why}):"] + problems
        if problems:
            later = len(vec.steps) - step.index - 1
            tail = [f"(the {later} later step(s) were not run)"] if later else []
            return result("FAIL", "\n".join([f"{head}:"] + [f"  {p}" for p in problems] + tail))
    if known is not None:
        return result("differs", known.why)
    return result("pass")


def run_matrix(vectors: list[Vector], dataplanes: list[str]) -> Matrix:
    matrix = Matrix(vectors=list(vectors), dataplanes=list(dataplanes))
    for vec in vectors:
        for dp in dataplanes:
            matrix.results[(vec.name, dp)] = run_vector(vec, dp)
    return matrix
