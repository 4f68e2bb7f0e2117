"""The experiments' own plots draw with matplotlib on the Agg backend (no display)."""

from __future__ import annotations

from typing import Any


def plt_module() -> Any:
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
