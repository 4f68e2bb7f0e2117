"""What a run tells an observer (the live view, `pyctl.web`) that watches it.

The observer lives in a higher layer than the emulation; the run only calls these methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class RunObserver(Protocol):
    def network_up(self, scenario: Any) -> None:
        """The network is up: the observer may read the scenario's state until `close`."""

    def finished(self, report: dict[str, Any], run_dir: Path) -> None:
        """The run's report (report.json and its plots are written) is final."""

    def close(self) -> None:
        """Stop watching; called once whatever happened."""
