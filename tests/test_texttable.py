"""The one text-table helper of the reports (pyctl.texttable)."""

from __future__ import annotations

from pyctl.texttable import text_table


def test_columns_are_as_wide_as_their_widest_cell_and_two_spaces_apart() -> None:
    # widths by hand: "name"/"alpha" -> 5, "Mbit/s"/"1.5"/"12.25" -> 6
    lines = text_table(["name", "Mbit/s"], [["alpha", "1.5"], ["b", "12.25"]])
    assert lines == ["name   Mbit/s", "-----  ------", "alpha  1.5", "b      12.25"]


def test_numbers_right_align_all_but_the_first_column_and_indent_prefixes() -> None:
    lines = text_table(["name", "Mbit/s"], [["alpha", "1.5"]], indent="  ", numbers=True)
    assert lines == ["  name   Mbit/s", "  -----  ------", "  alpha     1.5"]
