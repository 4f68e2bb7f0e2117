"""``icpn sched``: run the scheduler service, ask for one placement, compare the two modes.

icpn sched serve   --config sched.yaml | --network URL [--mode centralised|distributed]
                   [--port 9392] [--ifit-port 5391 | --no-collector] [--decisions FILE]
                   [--duration S]
icpn sched place   --config sched.yaml --job NAME --headend H [--gpus N] [--site S]
                   [--max-latency-us U] [--max-loss-ppm P] [--max-jitter-us J]
                   [--min-bandwidth-kbps B] [--load SITE=UTIL[,QUEUE]]...
                   [--telemetry PATH=DELAY_US[,LOSS_PPM]]...
icpn sched compare [--refresh-s 5] [--jobs 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import IO

from pyctl import constants as C
from pyctl.errors import ConfigError, ICPNError
from pyctl.sched.api import DEFAULT_PORT, load_api
from pyctl.sched.config import load_sched_config
from pyctl.sched.distributed import DistributedScheduler, compare_modes, default_scenario
from pyctl.sched.feed import CollectorFeed
from pyctl.sched.model import SLA, Job, LoadReport, PathState
from pyctl.sched.remote import NetworkClient, NetworkSteerer, TelemetryPoll
from pyctl.sched.scheduler import DecisionLog, LoggingSteerer, Scheduler, Steerer
from pyctl.telemetry.clock import ClockConfig
from pyctl.telemetry.config import CollectorConfig
from pyctl.telemetry.server import CollectorServer
from pyctl.telemetry.state import Collector


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(option, f"{text!r} is not a number") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    if (args.config is None) == (args.network is None):
        raise ConfigError("icpn sched serve", "give --config SCHED.yaml or --network URL")
    network = NetworkClient(args.network) if args.network else None
    # with --network: its sites and paths, its controller steers, its collector measures
    config = network.config() if network else load_sched_config(args.config)
    steerer: Steerer = NetworkSteerer(network) if network else LoggingSteerer()
    stream: IO[str] | None = None
    if args.decisions == "-":
        decision_log = DecisionLog(sys.stdout)
    elif args.decisions:
        try:
            stream = open(args.decisions, "a", encoding="utf-8")  # closed below
        except OSError as e:
            raise ConfigError(
                "--decisions", f"cannot open {args.decisions!r}: {e.strerror}"
            ) from None
        decision_log = DecisionLog(stream)
    else:
        decision_log = DecisionLog()
    scheduler: Scheduler | DistributedScheduler
    if args.mode == "distributed":
        scheduler = DistributedScheduler(
            config.sites,
            config.paths,
            refresh_s=args.refresh_s,
            steerer=steerer,
            decision_log=decision_log,
            weights=config.weights,
        )
    else:
        scheduler = Scheduler(
            config.sites,
            config.paths,
            steerer=steerer,
            decision_log=decision_log,
            weights=config.weights,
        )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, on_signal)))
    api = load_api(scheduler, args.bind, args.port)
    server: CollectorServer | None = None
    poll: TelemetryPoll | None = None
    try:
        if network is not None and isinstance(scheduler, Scheduler):
            poll = TelemetryPoll(network, scheduler, args.period).start()
        elif not args.no_collector:
            clock = ClockConfig(estimate=args.estimate_offsets, synchronised=args.synchronised)
            collector = Collector(CollectorConfig(period_s=args.period, clock=clock))
            CollectorFeed(collector, scheduler)
            server = CollectorServer(
                collector,
                bind=args.ifit_bind,
                port=args.ifit_port,
                http_bind=args.bind,
                http_port=None if args.metrics_port < 0 else args.metrics_port,
            ).start()
        api.start()
        where = f"scheduler ({args.mode}) API at {api.url}"
        if network is not None:
            names = ", ".join(p.name for p in config.paths)
            where += f", steering network {network.url} (paths {names})"
        if server is not None:
            host, port = server.address
            where += f", IFIT collector on udp [{host}]:{port}"
            if server.http is not None:
                where += f", metrics at {server.http.url}/metrics"
        print(where, file=sys.stderr, flush=True)
        stop.wait(args.duration)
    finally:
        api.stop()
        if poll is not None:
            poll.stop()
        if server is not None:
            server.stop()
        for sig, handler in previous:
            signal.signal(sig, handler)
        if stream is not None:
            stream.close()
    return 0


def _cmd_place(args: argparse.Namespace) -> int:
    config = load_sched_config(args.config)
    scheduler = Scheduler(config.sites, config.paths, weights=config.weights)
    for item in args.load or ():
        site, eq, rest = item.partition("=")
        if not eq:
            raise ConfigError("--load", f"{item!r} is not SITE=UTIL[,QUEUE]")
        util, _, queue = rest.partition(",")
        queued = int(_number(queue, "--load")) if queue else 0
        scheduler.report_load(LoadReport(site, _number(util, "--load"), queued))
    updates = []
    for item in args.telemetry or ():
        path, eq, rest = item.partition("=")
        if not eq:
            raise ConfigError("--telemetry", f"{item!r} is not PATH=DELAY_US[,LOSS_PPM]")
        delay, _, loss = rest.partition(",")
        updates.append(
            PathState(
                path,
                delay_us=_number(delay, "--telemetry"),
                loss_ppm=_number(loss, "--telemetry") if loss else None,
                source="command line",
            )
        )
    scheduler.on_telemetry(updates)
    sla = SLA(
        max_latency_us=args.max_latency_us,
        max_loss_ppm=args.max_loss_ppm,
        max_jitter_us=args.max_jitter_us,
        min_bandwidth_kbps=args.min_bandwidth_kbps,
    )
    job = Job(args.job, args.headend, sla, args.gpus, args.site)
    for cand in scheduler.candidates(job):
        mark = "ok " if cand.feasible else "no "
        print(f"{mark} {cand.site:10s} {cand.path:16s} score {cand.score:7.3f}  {cand.why}")
    decision = scheduler.place(job)
    print(json.dumps(decision.as_dict(), indent=2))
    return 0 if decision.kind == "place" else 1


def _cmd_compare(args: argparse.Namespace) -> int:
    result = compare_modes(default_scenario(jobs=args.jobs), refresh_s=args.refresh_s)
    if args.json:
        out: dict[str, object] = {
            mode.mode: {
                "placed": mode.placed,
                "rejected": mode.rejected,
                "queued": mode.queued,
                "queued_gpus": mode.queued_gpus,
                "avoidable": mode.avoidable,
                "sla_misses": mode.sla_misses,
                "resteers": mode.resteers,
                "per_site": mode.per_site,
                "decisions": [d.as_dict() for d in mode.decisions],
            }
            for mode in (result.centralised, result.distributed)
        }
        out["differing"] = [list(x) for x in result.differing]
        print(json.dumps(out, indent=2))
    else:
        print(f"default scenario, {args.jobs} jobs, distributed refresh every {args.refresh_s} s")
        print(result.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="icpn sched",
        description="Compute-aware joint scheduling of jobs/flows over sites and SRv6 paths.",
    )
    add_arguments(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``icpn sched`` subcommand (ICPNError propagates to the caller)."""
    rc: int = args.func(args)
    return rc


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The subcommands serve, place, compare (for ``icpn sched`` in pyctl.cli)."""
    sub = ap.add_subparsers(dest="sched_command", required=True, metavar="COMMAND")
    s = sub.add_parser("serve", help="run the load-report/placement API with a live collector")
    s.add_argument("--config", metavar="SCHED.yaml", help="sites and paths (or --network)")
    s.add_argument(
        "--network",
        metavar="URL",
        help="act on a running network: the scheduler API of `icpn run --sched-port PORT`"
        " (http://127.0.0.1:PORT) gives the sites and paths, steers through its controller"
        " and feeds its measured path figures every --period (centralised mode)",
    )
    s.add_argument("--mode", choices=("centralised", "distributed"), default="centralised")
    s.add_argument("--refresh-s", type=float, default=5.0, help="distributed: gossip period")
    s.add_argument("--bind", default="127.0.0.1", help="API and metrics address")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"API port ({DEFAULT_PORT})")
    s.add_argument("--no-collector", action="store_true", help="telemetry only via /telemetry")
    s.add_argument("--ifit-bind", default="::1")
    s.add_argument("--ifit-port", type=int, default=C.IFIT_REPORT_PORT)
    s.add_argument("--metrics-port", type=int, default=9391, help="-1: no /metrics")
    s.add_argument("--period", type=float, default=1.0, help="IFIT colour period, seconds")
    s.add_argument("--estimate-offsets", action="store_true")
    s.add_argument("--synchronised", action="store_true")
    s.add_argument("--decisions", metavar="FILE", help="decision log, JSON lines ('-' stdout)")
    s.add_argument("--duration", type=float, default=None)
    s.set_defaults(func=_cmd_serve)

    p = sub.add_parser("place", help="one placement decision from a config and given state")
    p.add_argument("--config", required=True, metavar="SCHED.yaml")
    p.add_argument("--job", required=True, help="job name")
    p.add_argument("--headend", required=True)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--site", default=None, help="pin the site (a flow to a known site)")
    p.add_argument("--max-latency-us", type=int)
    p.add_argument("--max-loss-ppm", type=float)
    p.add_argument("--max-jitter-us", type=int)
    p.add_argument("--min-bandwidth-kbps", type=int)
    p.add_argument("--load", action="append", metavar="SITE=UTIL[,QUEUE]")
    p.add_argument("--telemetry", action="append", metavar="PATH=DELAY_US[,LOSS_PPM]")
    p.set_defaults(func=_cmd_place)

    c = sub.add_parser("compare", help="centralised vs distributed on the built-in scenario")
    c.add_argument("--refresh-s", type=float, default=5.0)
    c.add_argument("--jobs", type=int, default=16)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_compare)


def main(argv: Sequence[str] | None = None) -> int:
    """``icpn sched COMMAND``; errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ICPNError as e:
        print(f"icpn sched: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
