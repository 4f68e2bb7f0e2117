"""How an experiment is run: the `icpn experiment` options, the bandwidth scale per data plane,
the run directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyctl.net.observer import RunObserver
from pyctl.net.scenario import check_run_options, choose_runner

# The Python switch forwards a few thousand packets a second: `icpn run` scales by 0.05 with
# 1000-octet packets; four times larger packets carry four times the bits at that packet rate.
REFERENCE_SCALE = 0.2


@dataclass(frozen=True)
class Options:
    """How to run an experiment (the `icpn experiment` options)."""

    dataplane: str = "auto"
    seconds: float = 5.0
    scale: float | None = None  # None: per data plane, as `icpn run`
    runs: Path = Path("runs")
    cli: bool = False
    log: Callable[[str], None] = print
    observer: RunObserver | None = None  # the live view (`--web`): pyctl.web.server.LiveView

    def __post_init__(self) -> None:
        check_run_options(self.seconds, self.scale)


def resolve_scale(
    dataplane: str, scale: float | None, ebpf_default: float = 1.0
) -> tuple[str, float]:
    """(data plane name, bandwidth factor): the reference switch defaults to 0.2, others to
    `ebpf_default` (an experiment whose traffic the VM's CPUs cannot carry at 1 lowers it)."""
    name, _, _ = choose_runner(dataplane)
    if scale is not None:
        return name, scale
    return name, REFERENCE_SCALE if name == "reference" else ebpf_default


def run_dir_for(opts: Options, name: str) -> Path:
    return opts.runs / f"{time.strftime('%Y%m%d-%H%M%S')}-experiment-{name}"
