"""`icpn shell SWITCH`: p4runtime-shell on one switch, for interactive use.

p4runtime-shell keeps one global client (one switch per process), which is why the controller
uses `pyctl.p4rt` instead; for poking at one switch by hand it is the right tool. Its release
pins protobuf<3.21, p4runtime==1.4.1, ipython 7.31 and jedi 0.17.2, none of which may reach
ICPN's environment (ICPN needs protobuf >= 6.31), so it runs from a venv of its own, made on
first use (about 15 s) at $ICPN_SHELL_VENV, else $XDG_CACHE_HOME/icpn/shell-venv, else
~/.cache/icpn/shell-venv.

SWITCH is ``host:port`` of a P4Runtime server (``:9559`` alone means 127.0.0.1:9559); the shell
joins with election id 0 (below ICPN's 1) unless --primary is given, so it does not take the
switch from ICPN's controller. Nothing is installed until a server answers on SWITCH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyctl.errors import ICPNError
from pyctl.targets.bmv2 import build

REQUIREMENT = "p4runtime-shell==0.0.6"
READY = ".icpn-ready"  # written last, holding REQUIREMENT: a half-made venv is made again


def address_of(switch: str) -> str:
    if switch.startswith(":"):
        return f"127.0.0.1{switch}"
    if ":" not in switch:
        raise ICPNError(f"SWITCH: {switch!r} is not host:port of a P4Runtime server")
    return switch


def venv_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the shell's own venv lives."""
    if env.get("ICPN_SHELL_VENV"):
        return Path(env["ICPN_SHELL_VENV"])
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "icpn" / "shell-venv"


def _create(path: Path) -> None:
    """A fresh venv at `path` with p4runtime-shell and its own pins installed by pip."""
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(path)],
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", REQUIREMENT],
    ]
    for argv in steps:
        rc = subprocess.run(argv, check=False).returncode
        if rc != 0:
            raise ICPNError(
                f"shell: `{' '.join(argv[-4:])}` exited {rc} while making {path} (see above)"
            )


@dataclass(frozen=True)
class ShellVenv:
    """The venv p4runtime-shell runs from; made by `create` the first time it is needed."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def ready(self) -> bool:
        marker = self.path / READY
        return (
            self.python.exists() and marker.exists() and marker.read_text().strip() == REQUIREMENT
        )

    def ensure(
        self,
        create: Callable[[Path], None] = _create,
        log: Callable[[str], None] = print,
    ) -> Path:
        """The venv's python, after making the venv if it is not (completely) there."""
        if not self.ready():
            log(f"icpn: installing {REQUIREMENT} into {self.path} (first use only) ...")
            create(self.path)
            (self.path / READY).write_text(REQUIREMENT + "\n")
        return self.python


def check_reachable(address: str, timeout: float = 2.0) -> None:
    """One line, no install, when nothing answers on `address`."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except ValueError:
        raise ICPNError(f"SWITCH: {address!r} has no numeric port") from None
    except OSError as e:
        why = e.strerror or type(e).__name__
    hint = "start BMv2's simple_switch_grpc (or `icpn run` a topology with BMv2 nodes) first"
    if shutil.which("simple_switch_grpc") is None:
        hint = "BMv2 (simple_switch_grpc) is not installed here: see the p4lang packages"
    raise ICPNError(f"SWITCH: no P4Runtime server answers on {address} ({why}); {hint}")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `icpn shell` on the CLI's subcommands."""
    p = sub.add_parser(
        "shell",
        help="open p4runtime-shell on one BMv2 switch",
        description=(
            "Interactive p4runtime-shell on one switch (host:port of its gRPC server), run from "
            "a venv of its own that the first use makes (its pins clash with ICPN's)."
        ),
    )
    p.add_argument("switch", metavar="SWITCH", help="host:port, e.g. 127.0.0.1:9559 or :9559")
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--primary", action="store_true", help="take the primary role (election 2)")
    p.add_argument("--p4info", default=str(build.P4INFO), help="P4Info (text) of the pipeline")
    p.add_argument("--push", action="store_true", help="also install p4/build/icpn.json first")
    p.set_defaults(func=run)


def shell_argv(args: argparse.Namespace) -> list[str]:
    """p4runtime-shell's arguments for these options."""
    argv = [
        "--grpc-addr",
        address_of(args.switch),
        "--device-id",
        str(args.device_id),
        "--election-id",
        "0,2" if args.primary else "0,0",
    ]
    if args.push:
        p4info = Path(args.p4info)
        for artefact, option in ((p4info, "--p4info"), (build.JSON, "--push")):
            if not artefact.exists():
                raise ICPNError(f"{option}: {artefact} does not exist (build it with `make -C p4`)")
        argv += ["--config", f"{p4info},{build.JSON}"]
    return argv


def run(args: argparse.Namespace) -> int:
    argv = shell_argv(args)
    check_reachable(address_of(args.switch))
    python = ShellVenv(venv_dir()).ensure()
    return subprocess.run([str(python), "-m", "p4runtime_sh", *argv], check=False).returncode
