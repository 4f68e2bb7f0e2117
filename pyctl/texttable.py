"""Text tables for reports a person reads in a terminal (`icpn run`, `icpn experiment`,
`icpn vectors`): a header, a rule of dashes, the rows, columns two spaces apart."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    indent: str = "",
    numbers: bool = False,
) -> list[str]:
    """The table's lines: each column as wide as its widest cell; left-aligned, or with
    `numbers` every column but the first (the row's name) right-aligned. Lines carry no
    trailing blanks."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        cells = enumerate(zip(r, widths, strict=True))
        text = "  ".join(c.rjust(w) if numbers and i else c.ljust(w) for i, (c, w) in cells)
        return indent + text.rstrip()

    return [fmt(header), indent + "  ".join("-" * w for w in widths), *[fmt(r) for r in rows]]
