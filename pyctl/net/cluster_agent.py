"""Runs a switch node's data plane on another server of a cluster run (pyctl.net.cluster).

Started by the first server over ssh inside the node's namespace, as
`python -m pyctl.net.cluster_agent --name N --runner EBPFSwitchRunner|SoftwareSwitchRunner
--port P=IFNAME ... [--rate P=BPS] [--buffer P=BYTES] [--dataplane NAME]`. It runs the same
runner a local node would (pyctl.net.runners) on a stand-in for the Mininet node: this process
is already in the namespace. One JSON command a line on stdin ({"op": "start"|"apply", "cfg":
NODE}, "alive", "stats", "ifit_counters", "set_port_rate", "stop"), one JSON answer a line on
stdout ({"value": ...} or {"error": "one line"}). Its files live in a temporary directory that
goes when it exits; "stop" answers with the node's final counters. stdin closing stops it too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyctl.errors import ICPNError
from pyctl.model import node_from_dict
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner


class Here:
    """The Mininet node as seen from inside it: shell commands and processes run right here."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def cmd(self, command: str) -> str:
        out = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        return out.stdout + out.stderr

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **kwargs)


def _pairs(specs: list[str], what: str) -> dict[int, str]:
    out = {}
    for spec in specs:
        num, _, value = spec.partition("=")
        if not num.isdigit() or not value:
            raise ICPNError(f"cluster_agent: {what} {spec!r} is not N=VALUE")
        out[int(num)] = value
    return out


def serve(args: argparse.Namespace, work: Path) -> int:
    ports = _pairs(args.port, "--port")
    rates = {p: float(v) for p, v in _pairs(args.rate, "--rate").items()}
    buffers = {p: int(v) for p, v in _pairs(args.buffer, "--buffer").items()}
    runner: EBPFSwitchRunner | SoftwareSwitchRunner
    if args.runner == "EBPFSwitchRunner":
        runner = EBPFSwitchRunner(args.name, rates, buffers)
    elif args.runner == "SoftwareSwitchRunner":
        runner = SoftwareSwitchRunner(args.name, args.dataplane, rates)
    else:
        raise ICPNError(f"cluster_agent: a {args.runner} cannot run on another server")
    (work / "logs").mkdir()
    started = False
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd.get("op")
            try:
                value: Any = None
                if op in ("start", "apply"):
                    cfg = node_from_dict(cmd["cfg"], f"{args.name} (from the first server)")
                    if started:
                        runner.apply(cfg)
                    else:
                        runner.start(Here(), cfg, ports, work)
                        started = True
                elif op == "alive":
                    value = runner.alive()
                elif op == "stats" and isinstance(runner, EBPFSwitchRunner):
                    value = runner.stats()
                elif op == "ifit_counters" and isinstance(runner, EBPFSwitchRunner):
                    got = runner.ifit_counters(cmd.get("ids"))
                    value = [[f, c, p, b] for (f, c), (p, b) in got.items()]
                elif op == "set_port_rate" and isinstance(runner, EBPFSwitchRunner):
                    runner.set_port_rate(int(cmd["port"]), float(cmd["bps"]))
                elif op == "stop":
                    runner.stop()
                    started = False
                    stats = work / "nodes" / f"{args.name}.stats.json"
                    value = json.loads(stats.read_text()) if stats.exists() else None
                    _answer({"value": value})
                    return 0
                else:
                    raise ICPNError(f"cluster_agent: {op!r} is not a command for {args.runner}")
                _answer({"value": value})
            except (ICPNError, OSError, KeyError, ValueError) as e:
                _answer({"error": str(e).splitlines()[0] if str(e) else type(e).__name__})
    finally:
        if started:
            runner.stop()
        for log in (work / "logs").glob("*.log"):  # the runner's own logs, into the agent's
            sys.stderr.write(log.read_text(errors="replace"))
    return 0


def _answer(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyctl.net.cluster_agent", description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--prefix", default="icpn", help="the run's prefix (names the work dir)")
    ap.add_argument("--runner", required=True)
    ap.add_argument("--dataplane", default="reference")
    ap.add_argument("--port", action="append", default=[], metavar="N=IFNAME")
    ap.add_argument("--rate", action="append", default=[], metavar="N=BPS")
    ap.add_argument("--buffer", action="append", default=[], metavar="N=BYTES")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix=f"{args.prefix}-agent-{args.name}-", dir="/tmp"))
    try:
        return serve(args, work)
    except ICPNError as e:
        print(f"cluster_agent: error: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
