"""The paper's pilots as experiments (`icpn experiment NAME`): see docs/experiments.md.

Each experiment is a module with `NAME`, `TITLE` and `run(Options) -> Outcome` (`options.py`,
`report.py`), built from the shared parts beside it: its network (`topologies.py`), the session
it drives (`session.py`, `sniffer.py`) and what it reports (`figures.py`, `report.py`,
`plots.py`); it writes report.json and PNGs into its run directory and prints
the paper's figures beside its own. Modules are imported when run, so that building the `icpn`
command line stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pyctl.errors import ConfigError

if TYPE_CHECKING:
    from pyctl.experiments.options import Options
    from pyctl.experiments.report import Outcome

EXPERIMENTS: dict[str, str] = {
    "ingest": "pyctl.experiments.ingest",
    "elastic": "pyctl.experiments.elastic",
    "remote-storage": "pyctl.experiments.remote_storage",
    "cross-dc": "pyctl.experiments.cross_dc",
    "reroute": "pyctl.experiments.reroute",
}


def run_experiment(name: str, opts: Options) -> Outcome:
    """Run one experiment (needs root: it builds a Mininet network)."""
    if name not in EXPERIMENTS:
        raise ConfigError("experiment", f"{name!r} is not one of: {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name])
    try:
        outcome: Outcome = module.run(opts)
        if opts.observer is not None:  # report.json and the plots are written: report.html
            opts.observer.finished(outcome.report, outcome.run_dir)
    finally:
        if opts.observer is not None:
            opts.observer.close()
    return outcome


__all__ = ["EXPERIMENTS", "run_experiment"]
