"""`icpn experiment NAME`: run one of the paper's pilots; print its figures beside the paper's."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pyctl.errors import ICPNError
from pyctl.experiments import EXPERIMENTS, run_experiment

DESCRIPTION = (
    "Run one of the paper's pilots on an emulated network (Mininet, switch nodes on the chosen "
    "data plane): ingest (one path vs 5-tuple ECMP vs APN deep hashing), elastic (per-task "
    "bandwidth changed at run time), remote-storage (training reads 200 km away), cross-dc "
    "(training across a 16:1 converged link), reroute (a path degrades, IFIT sees it, the "
    "scheduler moves the flow). Prints the paper's figure beside the emulated one and what is "
    "scaled; writes report.json and PNG plots into runs/<time>-experiment-<name>/. Needs root."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", choices=list(EXPERIMENTS), help=", ".join(EXPERIMENTS))
    p.add_argument(
        "--dataplane", default="auto", help="switch nodes: auto (default), ebpf or reference"
    )
    p.add_argument("--seconds", type=float, default=5.0, help="traffic time per phase (5)")
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="bandwidth/rate factor (default: 0.2 on the reference switch, else 1; ingest 0.5)",
    )
    p.add_argument("--runs", default="runs", help="where run directories go (runs/)")
    p.add_argument("--no-cli", action="store_true", help="never open the Mininet CLI")
    p.add_argument(
        "--web",
        nargs="?",
        const="127.0.0.1:8080",
        metavar="ADDR:PORT",
        help="serve a live view of the run (default 127.0.0.1:8080) and write report.html",
    )


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise ICPNError("icpn experiment needs root (namespaces, links): run it with sudo")
    from pyctl.experiments.options import Options
    from pyctl.web.server import LiveView

    interactive = False if args.no_cli else sys.stdin.isatty()
    opts = Options(
        dataplane=args.dataplane,
        seconds=args.seconds,
        scale=args.scale,
        runs=Path(args.runs),
        cli=interactive,
        observer=LiveView(args.web) if args.web is not None else None,
    )
    outcome = run_experiment(args.name, opts)
    print(outcome.text)
    return 0
