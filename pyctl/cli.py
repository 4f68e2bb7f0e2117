"""`icpn` command line: the entry point owns the process; every module below it is state-free."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pyctl.errors import ICPNError


def _default_vectors() -> Path:
    """The conformance vectors: the copy an installed package carries (setup.py puts
    tests/vectors into the wheel as pyctl/vectors), else the source checkout's."""
    here = Path(__file__).resolve().parent
    packaged = here / "vectors"
    return packaged if packaged.is_dir() else here.parent / "tests" / "vectors"


DEFAULT_VECTORS = _default_vectors()


def _cmd_packet(args: argparse.Namespace) -> int:
    from pyctl.packetio import run_pcap

    return run_pcap(
        dataplane=args.dataplane,
        node_path=Path(args.node),
        pcap_in=Path(args.pcap),
        pcap_out=Path(args.output) if args.output else None,
        in_port=args.in_port,
    )


def _cmd_vectors(args: argparse.Namespace) -> int:
    from pyctl.conformance import main as vectors_main

    root = Path(args.dir)
    if not root.is_dir():
        raise ICPNError(f"--dir: {root} is not a directory of vectors")
    return vectors_main(args.dataplane or None, root, args.select, args.verbose)


def _cmd_dissect(args: argparse.Namespace) -> int:
    from pyctl.packetio import dissect

    return dissect(args.source)


def _cmd_run(args: argparse.Namespace) -> int:
    from pyctl.net.scenario import run_topology

    cli = False if args.no_cli else None
    from pyctl.web.server import LiveView

    # every run leaves report.html; --web also serves the page while the network runs
    observer = LiveView(args.web)
    return run_topology(
        Path(args.topology),
        args.dataplane,
        args.seconds,
        args.scale,
        Path(args.runs),
        cli,
        link_element=args.link_element,
        sched_port=args.sched_port,
        observer=observer,
        servers=args.servers,
        ssh_config=Path(args.ssh_config) if args.ssh_config else None,
    )


BENCHES = {
    "bmv2": "bmv2.py",
    "ebpf": "ebpf_srv6.py",
    "path": "srv6_path.py",
    "network": "network.py",
    "collector": "collector.py",
    "profile": "bpf_profile.py",
    "links": "links.py",
}


def _cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    script = Path(__file__).resolve().parent.parent / "bench" / BENCHES[args.name]
    if not script.exists():
        raise ICPNError(f"bench: {script} not found (benchmarks run from a source checkout)")
    return subprocess.run([sys.executable, str(script), *args.args], check=False).returncode


def _cmd_demo(args: argparse.Namespace) -> int:
    from pyctl.demo import run_demo

    return run_demo(args.dataplane)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="icpn",
        description=(
            "ICPN: SRv6, APN, IFIT telemetry, APN-keyed deep hashing and ECN/PFC on P4/BMv2, "
            "eBPF and a Python reference data plane."
        ),
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "packet",
        help="push every packet of a pcap through one node",
        description=(
            "Push every frame of IN.pcap through the node described by NODE.yaml on one data "
            "plane; print verdict, egress port and a summary per packet; write outputs to -o."
        ),
    )
    p.add_argument(
        "--dataplane", default="reference", help="reference (default), ebpf, kernel, bmv2"
    )
    p.add_argument("--node", required=True, metavar="NODE.yaml", help="node configuration")
    p.add_argument("--in-port", type=int, default=None, help="ingress port (default: first port)")
    p.add_argument("-o", "--output", metavar="OUT.pcap", help="write every output frame here")
    p.add_argument("pcap", metavar="IN.pcap")
    p.set_defaults(func=_cmd_packet)

    v = sub.add_parser(
        "vectors",
        help="run the conformance vectors on every data plane present",
        description=(
            "Run the shared conformance vectors on each data plane available here and print a "
            "vector x data-plane table (pass / FAIL / skip with reason). Exit 1 on any FAIL."
        ),
    )
    v.add_argument(
        "--dataplane", action="append", help="only this data plane (repeatable; default: all)"
    )
    v.add_argument("--select", help="only vectors whose name or path contains this text")
    v.add_argument("--dir", default=str(DEFAULT_VECTORS), help="vector directory")
    v.add_argument("-v", "--verbose", action="store_true", help="show the diff of every failure")
    v.set_defaults(func=_cmd_vectors)

    d = sub.add_parser(
        "dissect",
        help="dissect a pcap or hex frame with the ICPN layers and validate it",
        description="Show every layer (APN, IOAM trace, AltMark, SRH, IFIT report) and problems.",
    )
    d.add_argument("source", help="a .pcap file, or an Ethernet frame as hex")
    d.set_defaults(func=_cmd_dissect)

    r = sub.add_parser(
        "run",
        help="bring a topology up in Mininet, run its flows, report paths, IFIT, ECN",
        description=(
            "Build the topology's network (hosts, switch nodes, links with their delay, loss, "
            "rate and queue), program every "
            "node from the intents, run the flows (single-path, then multi-path with APN-keyed "
            "deep hashing when there are SRv6 policies), and write report.json and PNG plots "
            "into runs/<time>-<topology>/. Opens the Mininet CLI at the end only when stdin is "
            "a terminal. Needs root."
        ),
    )
    r.add_argument("topology", metavar="TOPOLOGY.yaml")
    r.add_argument(
        "--dataplane",
        default="auto",
        help="switch nodes: ebpf, reference, bmv2 (BMv2 with p4/build/icpn.json), or auto"
        " (default: ebpf when it can run here)",
    )
    r.add_argument("--seconds", type=float, default=5.0, help="traffic time per phase (5)")
    r.add_argument(
        "--scale", type=float, default=None, help="bandwidth/rate factor (default: per data plane)"
    )
    r.add_argument("--runs", default="runs", help="where run directories go (runs/)")
    r.add_argument("--no-cli", action="store_true", help="never open the Mininet CLI")
    r.add_argument(
        "--web",
        nargs="?",
        const="127.0.0.1:8080",
        metavar="ADDR:PORT",
        help="serve a live view of the run while it runs (default 127.0.0.1:8080); every run"
        " writes report.html",
    )
    r.add_argument(
        "--link-element",
        choices=("icpn", "netem"),
        default="icpn",
        help="what applies each link's delay/loss/rate/queue: icpn (icpn_linkd, every kernel;"
        " default) or netem (kernels with netem and act_mirred)",
    )
    r.add_argument(
        "--sched-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve the running network's scheduler API on 127.0.0.1:PORT (docs/scheduler.md:"
        " POST /place steers a flow through the controller)",
    )
    r.add_argument(
        "--servers",
        metavar="HOST1,HOST2,...",
        help="spread the nodes over these machines with Mininet's cluster mode, HOST1 being this"
        " one (ssh as root to the others; docs/cluster.md); replaces the topology's servers:",
    )
    r.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="an ssh_config(5) file for every ssh to the servers (default: root's own)",
    )
    r.set_defaults(func=_cmd_run)

    from pyctl.experiments import cli as experiments_cli

    x = sub.add_parser(
        "experiment",
        help="run one of the paper's pilots; print its figures beside the paper's",
        description=experiments_cli.DESCRIPTION,
    )
    experiments_cli.add_arguments(x)
    x.set_defaults(func=experiments_cli.run)

    from pyctl.targets.bmv2.shell import add_parser as add_shell

    add_shell(sub)

    b = sub.add_parser(
        "bench",
        help="run a benchmark of bench/ (bmv2, ebpf, path, network, collector, profile, links)",
        description=(
            "Run one of the benchmarks under bench/ from a source checkout; each prints its "
            "figures side by side with their targets; profile shows where icpn_node's time goes, "
            "by source line (needs perf). Extra arguments go to the script."
        ),
    )
    b.add_argument("name", choices=sorted(BENCHES), help="which benchmark")
    b.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    b.set_defaults(func=_cmd_bench)

    m = sub.add_parser(
        "demo",
        help="headend -> transit -> egress with APN, SRv6 and IFIT, hop by hop",
        description=(
            "Send sample flows through a three-node SRv6 chain (APN-marking IFIT headend, End "
            "transit, End.DT6 IFIT tail) and show each hop, the traced path and the report."
        ),
    )
    m.add_argument("--dataplane", default=None, help="one data plane (default: each available)")
    m.set_defaults(func=_cmd_demo)

    from pyctl.sched import cli as sched_cli
    from pyctl.telemetry import collector

    c = sub.add_parser(
        "collector",
        help="receive IFIT reports, keep per-flow and per-hop figures, export them",
        description=(
            "Receive IFIT reports (SPEC 3) over UDP, compute delay, jitter, loss per colour "
            "period and the traced path; export JSON lines and Prometheus text on HTTP."
        ),
    )
    collector.add_arguments(c)
    c.set_defaults(func=collector.run)

    s = sub.add_parser(
        "sched",
        help="compute-aware scheduling: serve the load API, place a job, compare modes",
        description="Pick the site and SRv6 path from compute load and live telemetry.",
    )
    sched_cli.add_arguments(s)

    from pyctl import wireshark

    w = sub.add_parser(
        "wireshark",
        help="the Wireshark/tshark dissector for APN, Alternate Marking, NEXT-CSID, IFIT reports",
        description=wireshark.DESCRIPTION,
    )
    wireshark.add_arguments(w)
    w.set_defaults(func=wireshark.run)
    return ap


class Terminated(BaseException):
    """SIGTERM, raised where the command is: it unwinds like Ctrl-C, so every command's cleanup
    (switches, namespaces, veths) runs. A command with its own SIGTERM handler replaces it."""


def _terminated(signum: int, _frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # (tests call main() in threads)
        signal.signal(signal.SIGTERM, _terminated)
    try:
        rc: int = args.func(args)
    except ICPNError as e:
        print(f"icpn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("icpn: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("icpn: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:  # `icpn ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
