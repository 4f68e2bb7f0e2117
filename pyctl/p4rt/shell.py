"""`icpn shell SWITCH`: p4runtime-shell on one switch, for interactive use.

p4runtime-shell keeps one global client (one switch per process), which is why the controller
uses `pyctl.p4rt` instead; for poking at one switch by hand it is the right tool. It is an
optional dependency: its PyPI release pins p4runtime==1.4.1 and ipython 7.31 (beside our
p4runtime 1.6.0), so it is installed on request, into the venv, without its pins:

    .venv/bin/pip install --no-deps p4runtime-shell 'ipython>=8' jedi

SWITCH is ``host:port`` of a P4Runtime server (``:9559`` alone means 127.0.0.1:9559); the shell
joins with election id 0 (below ICPN's 1) unless --primary is given, so it does not take the
switch from ICPN's controller.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from pyctl.errors import ICPNError
from pyctl.targets.bmv2 import build

INSTALL_HINT = (
    "p4runtime-shell is not installed; install it into the venv with "
    "`.venv/bin/pip install --no-deps p4runtime-shell 'ipython>=8' jedi` "
    "(its own pins, p4runtime==1.4.1 and ipython 7.31, clash with ICPN's p4runtime 1.6.0)"
)


def address_of(switch: str) -> str:
    if switch.startswith(":"):
        return f"127.0.0.1{switch}"
    if ":" not in switch:
        raise ICPNError(f"SWITCH: {switch!r} is not host:port of a P4Runtime server")
    return switch


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `icpn shell` on the CLI's subcommands."""
    p = sub.add_parser(
        "shell",
        help="open p4runtime-shell on one BMv2 switch",
        description="Interactive p4runtime-shell on one switch (host:port of its gRPC server).",
    )
    p.add_argument("switch", metavar="SWITCH", help="host:port, e.g. 127.0.0.1:9559 or :9559")
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--primary", action="store_true", help="take the primary role (election 2)")
    p.add_argument("--p4info", default=str(build.P4INFO), help="P4Info (text) of the pipeline")
    p.add_argument("--push", action="store_true", help="also install p4/build/icpn.json first")
    p.set_defaults(func=run)


def shell_argv(args: argparse.Namespace) -> list[str]:
    """The p4runtime-shell command line for these arguments."""
    p4info = Path(args.p4info)
    if not p4info.exists():
        raise ICPNError(f"--p4info: {p4info} does not exist (build it with `make -C p4`)")
    argv = [
        "p4runtime-sh",
        "--grpc-addr",
        address_of(args.switch),
        "--device-id",
        str(args.device_id),
        "--election-id",
        "0,2" if args.primary else "0,0",
    ]
    if args.push:
        argv += ["--config", f"{p4info},{build.JSON}"]
    return argv


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("p4runtime_sh") is None:
        raise ICPNError(INSTALL_HINT)
    import p4runtime_sh.shell as sh

    saved = sys.argv
    sys.argv = shell_argv(args)
    try:
        sh.main()
    finally:
        sys.argv = saved
    return 0
