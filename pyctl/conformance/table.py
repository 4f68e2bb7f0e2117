"""The vector x data-plane table, the per-plane totals under it, the failures, and `main`
(what `icpn vectors` prints)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from pyctl.conformance.runner import Matrix, run_matrix
from pyctl.conformance.vectors import load_vectors
from pyctl.errors import ConfigError
from pyctl.targets import DATAPLANES
from pyctl.texttable import text_table


def format_table(matrix: Matrix) -> str:
    """Vector x data-plane table (pass / FAIL / skip [n] with the reasons as notes) + summary."""
    notes: dict[str, int] = {}
    rows = []
    for vec in matrix.vectors:
        cells = []
        for dp in matrix.dataplanes:
            r = matrix.results.get((vec.name, dp))
            if r is None:
                cells.append("-")
            elif r.status in ("skip", "differs"):
                n = notes.setdefault(f"{r.status}: {dp}: {r.detail}", len(notes) + 1)
                cells.append(f"{r.status} [{n}]")
            else:
                cells.append(r.status)
        rows.append([vec.rel, *cells])
    header = ["vector", *matrix.dataplanes]
    lines = text_table(header, rows)
    lines += [f"[{n}] {text}" for text, n in notes.items()]
    lines.append("")
    lines += format_totals(matrix)
    differs = matrix.count("differs")
    lines.append(
        f"vectors: {matrix.count('pass')} passed, {matrix.count('FAIL')} failed, "
        f"{matrix.count('skip')} skipped"
        + (f" ({differs} documented differences)" if differs else "")
    )
    return "\n".join(lines)


STATUSES = ("pass", "differs", "skip", "FAIL")


def plane_totals(matrix: Matrix, plane: str) -> dict[str, int]:
    """How many vectors ended in each status on one plane (they add up to the vector count)."""
    counts = Counter(r.status for (_, dp), r in matrix.results.items() if dp == plane)
    return {status: counts.get(status, 0) for status in STATUSES}


def format_totals(matrix: Matrix) -> list[str]:
    """One line per data plane: pass / differs / skip / FAIL out of the vectors run."""
    width = max((len(dp) for dp in matrix.dataplanes), default=0)
    lines = []
    for dp in matrix.dataplanes:
        totals = plane_totals(matrix, dp)
        counts = " / ".join(f"{totals[s]} {s}" for s in STATUSES)
        lines.append(f"{dp.ljust(width)}  {counts}  (of {sum(totals.values())} vectors)")
    return lines


def format_failures(matrix: Matrix) -> str:
    out = []
    by_name = {v.name: v for v in matrix.vectors}
    for (name, dp), r in matrix.results.items():
        if r.status == "FAIL":
            vec = by_name[name]
            out.append(f"FAIL {vec.rel} on {dp} ({vec.path}; expected bytes from: {vec.spec})")
            out += [f"  {line}" for line in r.detail.splitlines()]
    return "\n".join(out)


def main(dataplanes: list[str] | None, root: Path, select: str | None, verbose: bool) -> int:
    """Run the vectors under `root` on the data planes (all registered ones when None).

    Exit code: 0 when nothing failed, 1 on any FAIL, 2 on a bad vector or argument.
    """
    names = list(dataplanes) if dataplanes else list(DATAPLANES)
    unknown = [n for n in names if n not in DATAPLANES]
    if unknown:
        print(
            f"error: unknown data plane(s) {unknown} (known: {list(DATAPLANES)})", file=sys.stderr
        )
        return 2
    try:
        vectors = load_vectors(Path(root), select)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not vectors:
        what = f" matching {select!r}" if select else ""
        print(f"error: no vectors{what} under {root}", file=sys.stderr)
        return 2
    matrix = run_matrix(vectors, names)
    if verbose:
        for vec in vectors:
            for dp in names:
                r = matrix.results[(vec.name, dp)]
                extra = f": {r.detail}" if r.status == "skip" else ""
                print(f"{r.status:4} {vec.rel} [{dp}] ({', '.join(vec.covers)}; {vec.spec}){extra}")
        print()
    failures = format_failures(matrix)
    if failures:
        print(failures)
        print()
    print(format_table(matrix))
    return 1 if matrix.failed else 0
