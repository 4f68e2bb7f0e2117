"""``icpn collector``: the command line of the IFIT collector (options -> `CollectorConfig`,
then the server until interrupted). Run as ``python -m pyctl.telemetry.collector`` by `icpn run`
and the experiments.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import IO

from pyctl import constants as C
from pyctl.errors import ConfigError, ICPNError
from pyctl.telemetry.clock import ClockConfig
from pyctl.telemetry.config import COUNTER_MODES, DEFAULT_HTTP_PORT, DELAY_FROM, CollectorConfig
from pyctl.telemetry.export import JsonLinesSink
from pyctl.telemetry.server import CollectorServer, serve
from pyctl.telemetry.state import Collector


def _pair(text: str, option: str, sep: str = "=") -> tuple[str, int]:
    key, found, value = text.partition(sep)
    if not found:
        raise ConfigError(option, f"{text!r} is not KEY{sep}VALUE")
    try:
        return key, int(value, 0)
    except ValueError:
        raise ConfigError(option, f"{value!r} in {text!r} is not an integer") from None


def _node(text: str, option: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ConfigError(option, f"node id {text!r} is not an integer") from None
    if not 0 <= value < 1 << 32:
        raise ConfigError(option, f"node id {value} does not fit 32 bits")
    return value


def config_from_args(args: argparse.Namespace) -> CollectorConfig:
    offsets = {}
    for item in args.clock_offset or ():
        node, value = _pair(item, "--clock-offset")
        offsets[_node(node, "--clock-offset")] = value
    floors = {}
    for item in args.link_floor or ():
        link, value = _pair(item, "--link-floor")
        a, dash, b = link.partition("-")
        if not dash:
            raise ConfigError("--link-floor", f"{link!r} is not A-B (two node ids)")
        floors[(_node(a, "--link-floor"), _node(b, "--link-floor"))] = value
    endpoints = {}
    for item in args.endpoints or ():
        fid, _, ends = item.partition("=")
        head, dash, tail = ends.partition("-")
        if not dash:
            raise ConfigError("--endpoints", f"{item!r} is not FLOWMON=HEAD-TAIL")
        endpoints[_node(fid, "--endpoints")] = (
            _node(head, "--endpoints"),
            _node(tail, "--endpoints"),
        )
    allowed = []
    for prefix in args.allow or ():
        try:
            allowed.append(ipaddress.ip_network(prefix, strict=False))
        except ValueError:
            raise ConfigError("--allow", f"{prefix!r} is not a prefix") from None
    try:
        trace_type = int(args.trace_type, 0)
    except ValueError:
        raise ConfigError("--trace-type", f"{args.trace_type!r} is not an integer") from None
    clock = ClockConfig(
        offsets=offsets,
        estimate=args.estimate_offsets,
        window_periods=args.estimate_window,
        floor_us=args.floor_us,
        link_floor_us=floors,
        reference=None if args.reference is None else _node(args.reference, "--reference"),
        synchronised=args.synchronised,
    )
    return CollectorConfig(
        trace_type=trace_type,
        period_s=args.period,
        counters=args.counters,
        delay_from=args.delay_from,
        clock=clock,
        endpoints=endpoints,
        allowed_sources=tuple(allowed),
        max_flows=args.max_flows,
        max_report_bytes=args.max_report_bytes,
        report_events=args.report_events,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``icpn collector`` (docs/telemetry.md)."""
    p.add_argument("--bind", default="::1", help="UDP address to receive reports on (::1)")
    p.add_argument("--port", type=int, default=C.IFIT_REPORT_PORT, help="UDP port (5391)")
    p.add_argument("--http-bind", default="127.0.0.1", help="address of /metrics (127.0.0.1)")
    p.add_argument(
        "--http-port", type=int, default=DEFAULT_HTTP_PORT, help="port of /metrics, /flows (9391)"
    )
    p.add_argument("--no-http", action="store_true", help="no HTTP exporter")
    p.add_argument("--jsonl", metavar="FILE", help="write JSON-line events here ('-' = stdout)")
    p.add_argument("--report-events", action="store_true", help="one JSON line per report too")
    p.add_argument("--period", type=float, default=1.0, help="colour period in seconds (1.0)")
    p.add_argument("--trace-type", default=hex(C.IOAM_TRACE_TYPE_DEFAULT), help="IOAM trace type")
    p.add_argument("--counters", choices=COUNTER_MODES, default="per-period")
    p.add_argument("--delay-from", choices=DELAY_FROM, default="all")
    p.add_argument(
        "--clock-offset", action="append", metavar="NODE=US", help="node clock ahead by US µs"
    )
    p.add_argument("--estimate-offsets", action="store_true", help="estimate clock offsets")
    p.add_argument("--estimate-window", type=int, default=10, help="periods in the estimate")
    p.add_argument("--floor-us", type=int, default=0, help="assumed minimum hop delay (0)")
    p.add_argument("--link-floor", action="append", metavar="A-B=US", help="per-hop floor")
    p.add_argument("--reference", metavar="NODE", help="reference clock node for estimates")
    p.add_argument("--synchronised", action="store_true", help="node clocks are synchronised")
    p.add_argument(
        "--endpoints", action="append", metavar="FLOWMON=HEAD-TAIL", help="loss endpoints"
    )
    p.add_argument("--allow", action="append", metavar="PREFIX", help="accept only from these")
    p.add_argument("--max-flows", type=int, default=10_000)
    p.add_argument("--max-report-bytes", type=int, default=4096)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Run ``icpn collector`` with parsed arguments until SIGINT/SIGTERM or --duration."""
    config = config_from_args(args)
    stream: IO[str] | None = None
    sink: JsonLinesSink | None = None
    if args.jsonl == "-":
        sink = JsonLinesSink(out or sys.stdout)
    elif args.jsonl:
        try:
            stream = open(args.jsonl, "a", encoding="utf-8")  # closed below
        except OSError as e:
            raise ConfigError("--jsonl", f"cannot open {args.jsonl!r}: {e.strerror}") from None
        sink = JsonLinesSink(stream)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, on_signal)))

    def started(server: CollectorServer) -> None:
        host, port = server.address
        where = f"IFIT collector on udp [{host}]:{port}"
        if server.http is not None:
            where += f", metrics at {server.http.url}/metrics"
        print(where, file=sys.stderr, flush=True)

    collector = Collector(config, sink)
    try:
        serve(
            collector,
            bind=args.bind,
            port=args.port,
            http_bind=args.http_bind,
            http_port=None if args.no_http else args.http_port,
            stop=stop,
            duration=args.duration,
            started=started,
        )
    finally:
        for sig, handler in previous:
            signal.signal(sig, handler)
        if stream is not None:
            stream.close()
    c = collector
    print(
        f"IFIT collector stopped: {c.datagrams} datagrams, {c.trace_reports} trace reports, "
        f"{c.counter_reports} counter records, {sum(c.rejected.values())} rejected, "
        f"{len(c.flows)} flows",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="icpn collector",
        description="Receive IFIT reports over UDP; export per-flow/per-hop delay, jitter, loss "
        "and paths as JSON lines and Prometheus text (/metrics).",
    )
    add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``icpn collector [options]``; errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ICPNError as e:
        print(f"icpn collector: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
