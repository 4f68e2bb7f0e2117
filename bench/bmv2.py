"""BMv2 benchmark: packets per second through p4/icpn.p4, and P4Runtime entries written per second.

One run, side by side:

* pps for plain IPv6 forwarding, the SRv6 headend (H.Encaps, 3 SIDs, APN, IFIT head) and an End
  + IFIT transit node, one switch each, forwarding in turns of --burst frames (so that the
  machine's other work lands on all three alike), with each switch's CPU time per frame; the
  full pipeline should keep >= 70% of the plain forwarding rate;
* FIB entries per second written in batches by the ICPN client (`pyctl.p4rt`, names resolved
  through the P4Info; it encodes a batch while the switch applies the one before, one request
  in flight), by a bare grpcio client (ids looked up once, protobuf built by hand, one request
  after another) and
  by finsy (a maintained P4Runtime library: its entities encoded through its schema); the ICPN
  client should keep >= 80% of the bare client's rate, and its ratio to finsy is printed.

Usage (root, BMv2 installed): .venv/bin/python bench/bmv2.py [--packets N] [--burst N] [--entries N]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from machine import print_machine, proc_cpu_s, target
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether

from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig
from pyctl.p4rt import LPM, TableEntry, Update
from pyctl.p4rt.p4info import P4Info
from pyctl.p4rt.pb import p4runtime_pb2
from pyctl.targets.bmv2 import build, codes
from pyctl.targets.bmv2.dataplane import BMv2DataPlane
from pyctl.targets.bmv2.links import PACKET_OUTGOING
from pyctl.targets.bmv2.process import SWITCH_ENV, default_binary

MAC1, MAC2, NEXT = "02:00:00:00:0a:01", "02:00:00:00:0a:02", "02:00:00:00:0b:01"
PORTS = [{"index": 1, "mac": MAC1}, {"index": 2, "mac": MAC2}]
WINDOW = 16  # frames in flight: stays below BMv2's 64-packet egress queue


def _node(extra: dict[str, object]) -> NodeConfig:
    data: dict[str, object] = {
        "name": "bench",
        "role": "transit",
        "node_id": 5,
        "source": "fc00:a::1",
        "ports": PORTS,
        "routes": [
            {"prefix": "2001:db8:2::/48", "port": 2, "mac": NEXT},
            {"prefix": "fc00::/16", "port": 2, "mac": NEXT},
        ],
    }
    data.update(extra)
    return node_from_dict(data, "bench")


def scenarios() -> list[tuple[str, NodeConfig, bytes]]:
    plain = bytes(
        Ether(dst=MAC1)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
        / UDP(sport=1000, dport=2000)
        / (b"x" * 64)
    )
    headend = _node(
        {
            "role": "headend",
            "policies": [
                {
                    "name": "te",
                    "match": {"dst": "2001:db8:2::/48"},
                    "sid_lists": [{"segments": ["fc00:b::1", "fc00:c::1", "fc00:d::d6"]}],
                }
            ],
            "apn": {"classifiers": [{"match": {"dport": 2000}, "apn_id": 0x10002}]},
            "ifit": {"role": "head", "flows": [{"match": {"dport": 2000}, "flowmon_id": 9}]},
        }
    )
    transit = _node(
        {
            "local_sids": [{"sid": "fc00:a::/48", "behaviour": "End"}],
            "ifit": {"role": "transit"},
        }
    )
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop

    from pyctl.packets import AltMarkOption, ioam_trace_option

    srv6 = bytes(
        Ether(dst=MAC1)
        / IPv6(src="fc00:9::1", dst="fc00:a::1")
        / IPv6ExtHdrHopByHop(options=[AltMarkOption(flowmon_id=9), ioam_trace_option(max_nodes=8)])
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:b::1", "fc00:a::1"], segleft=1)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
        / UDP(sport=1000, dport=2000)
        / (b"x" * 64)
    )
    return [
        ("plain IPv6 forwarding", _node({}), plain),
        ("SRv6 headend (H.Encaps 3 SIDs, APN, IFIT head)", headend, plain),
        ("End + IFIT transit", transit, srv6),
    ]


def _send_through(dp: BMv2DataPlane, frame: bytes, packets: int) -> tuple[int, float]:
    """Frames received on port 2 and the seconds taken, `packets` frames sent into port 1 with
    WINDOW frames in flight."""
    tx, rx = dp.sockets[1], dp.sockets[2]
    sent = received = 0

    def drain(timeout: float) -> int:
        got = 0
        ready, _, _ = select.select([rx], [], [], timeout)
        if not ready:
            return 0
        while True:
            try:
                _, addr = rx.recvfrom(65535)
            except BlockingIOError:
                return got
            if addr[2] != PACKET_OUTGOING:
                got += 1

    start = time.monotonic()
    deadline = start + 120
    while received < packets and time.monotonic() < deadline:
        while sent < packets and sent - received < WINDOW:
            tx.send(frame)
            sent += 1
        got = drain(0.5)
        if got == 0 and sent - received >= WINDOW:
            received = sent  # a lost frame must not stall the window
        received += got
    return received, time.monotonic() - start


def switch_cpu_seconds(dp: BMv2DataPlane) -> float:
    """CPU time the switch process has used so far, all its threads."""
    pid = dp.process_.pid if dp.process_ is not None else None
    if pid is None:
        return 0.0
    return proc_cpu_s(pid)


@dataclass
class Turns:
    """Each switch's frames, seconds and CPU seconds, summed over its turns, and its pps in
    each turn (the turns of one cycle ran back to back)."""

    frames: list[int]
    seconds: list[float]
    cpu: list[float]
    per_cycle: list[list[float]]


def measure_in_turns(planes: list[tuple[BMv2DataPlane, bytes]], packets: int, burst: int) -> Turns:
    """Frames per second through several switches, each configured once, taking turns of
    `burst` frames until each has forwarded `packets`: they share the machine's cores at the
    same moments, so a burst of other work on the machine lands on all of them alike (what
    one switch measured after another cannot promise)."""
    n = len(planes)
    turns = Turns([0] * n, [0.0] * n, [0.0] * n, [])
    for dp, frame in planes:
        _send_through(dp, frame, WINDOW)  # warm-up
    while turns.frames[0] < packets:
        cycle = []
        for i, (dp, frame) in enumerate(planes):
            cpu = switch_cpu_seconds(dp)
            got, seconds = _send_through(dp, frame, min(burst, packets - turns.frames[i]))
            turns.cpu[i] += switch_cpu_seconds(dp) - cpu
            turns.frames[i] += got
            turns.seconds[i] += seconds
            cycle.append(got / seconds)
        turns.per_cycle.append(cycle)
    return turns


def _fib_entries(n: int) -> list[TableEntry]:
    base = int(ipaddress.IPv6Address("3000::"))
    return [
        TableEntry(
            "fib",
            {"vrf": 1, "family": codes.FAMILY_IPV6, "addr": LPM(base + (i << 64), 64)},
            "set_nexthop",
            {"port": 2, "dmac": NEXT},
        )
        for i in range(n)
    ]


def measure_icpn_client(dp: BMv2DataPlane, n: int, batch: int) -> float:
    assert dp.switch is not None
    entries = _fib_entries(n)
    start = time.monotonic()
    dp.switch.write([Update("insert", e) for e in entries], batch=batch)
    return n / (time.monotonic() - start)


def measure_bare_client(dp: BMv2DataPlane, n: int, batch: int) -> float:
    """A plain grpcio client: ids resolved once by hand, protobuf built directly."""
    assert dp.switch is not None
    info = dp.p4info.message
    table = next(t for t in info.tables if t.preamble.name.endswith(".fib"))
    action = next(a for a in info.actions if a.preamble.name.endswith(".set_nexthop"))
    fid = {f.name: f.id for f in table.match_fields}
    pid = {p.name: p.id for p in action.params}
    stub = dp.switch._require_stub()  # the same channel, no client logic
    election = p4runtime_pb2.Uint128(low=dp.switch.election_id)
    base = int(ipaddress.IPv6Address("4000::"))
    start = time.monotonic()
    for lo in range(0, n, batch):
        req = p4runtime_pb2.WriteRequest(device_id=dp.switch.device_id, election_id=election)
        for i in range(lo, min(n, lo + batch)):
            u = req.updates.add(type=p4runtime_pb2.Update.INSERT)
            te = u.entity.table_entry
            te.table_id = table.preamble.id
            te.match.add(field_id=fid["vrf"]).exact.value = (2).to_bytes(2, "big")
            te.match.add(field_id=fid["family"]).exact.value = bytes([6])
            m = te.match.add(field_id=fid["addr"])
            m.lpm.value = (base + (i << 64)).to_bytes(16, "big")
            m.lpm.prefix_len = 64
            a = te.action.action
            a.action_id = action.preamble.id
            a.params.add(param_id=pid["port"], value=(2).to_bytes(2, "big"))
            a.params.add(param_id=pid["dmac"], value=bytes.fromhex("02000000" + "0b01"))
        stub.Write(req, timeout=60)
    return n / (time.monotonic() - start)


def measure_finsy_client(dp: BMv2DataPlane, n: int, batch: int) -> float:
    """finsy (a maintained P4Runtime library on PyPI) encoding the same entries from its own
    entity objects through its P4Schema into its own WriteRequests (bench/finsy_write.py, a
    process of its own), written with the election id of the ICPN client holding the primary
    role. finsy's asyncio Switch is not used: it would arbitrate for that role, and the figure
    is the client-side work per entry, which is the same either way."""
    assert dp.switch is not None
    argv = [sys.executable, str(Path(__file__).with_name("finsy_write.py")), dp.switch.address]
    argv += [str(dp.switch.device_id), str(dp.switch.election_id), str(build.P4INFO)]
    argv += [str(n), str(batch)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench/bmv2.py: finsy writer failed: {out.stderr.strip()[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=12000, help="frames per scenario")
    ap.add_argument("--burst", type=int, default=1000, help="frames per turn of one switch")
    ap.add_argument("--entries", type=int, default=4000, help="FIB entries per client")
    ap.add_argument("--batch", type=int, default=1000, help="updates per WriteRequest")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the clients (best kept)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary too")
    ap.add_argument(
        "--switch",
        metavar="PATH",
        help="the simple_switch_grpc to run (default: $ICPN_SIMPLE_SWITCH, else from PATH);"
        " BMv2's docs/performance.md: build it without logging macros to benchmark",
    )
    args = ap.parse_args(argv)
    # Each client writes into a freshly installed pipeline whose FIB already holds the bench
    # node's own routes: the room left is the table's size (P4Info) less those.
    room = P4Info.load(build.P4INFO).table("fib").size - len(_node({}).routes)
    for flag, value, top in (
        ("--packets", args.packets, None),
        ("--burst", args.burst, None),
        ("--entries", args.entries, room),
        ("--batch", args.batch, None),
        ("--rounds", args.rounds, None),
    ):
        if value < 1 or (top is not None and value > top):
            bound = f"1..{top}, the FIB's room" if top is not None else "at least 1"
            ap.error(f"{flag} {value}: {bound}")
    print_machine()
    if args.switch:
        os.environ[SWITCH_ENV] = args.switch
    reason = BMv2DataPlane.unavailable()
    if reason is not None:
        print(f"bench/bmv2.py: skipped: {reason}")
        return 0
    cases = scenarios()
    names = [n for n, _, _ in cases]
    clients: dict[str, float] = {}
    planes: list[BMv2DataPlane] = []
    try:
        # One switch per scenario, configured once; they forward in turns (measure_in_turns).
        for _, node, _ in cases:
            planes.append(BMv2DataPlane())
            planes[-1].configure(node)
        turns = measure_in_turns(
            [(dp, frame) for dp, (_, _, frame) in zip(planes, cases, strict=True)],
            args.packets,
            args.burst,
        )
        dp = planes[0]
        for _ in range(args.rounds):
            # Each client writes into a freshly installed pipeline.
            for name, fn in (
                ("ICPN client entries/s", measure_icpn_client),
                ("bare grpcio entries/s", measure_bare_client),
                ("finsy entries/s", measure_finsy_client),
            ):
                dp.configure(_node({}))
                clients[name] = max(clients.get(name, 0.0), fn(dp, args.entries, args.batch))
    finally:
        for plane in planes:
            plane.close()
    pps = [f / s for f, s in zip(turns.frames, turns.seconds, strict=True)]
    cpu_us = [1e6 * c / f for c, f in zip(turns.cpu, turns.frames, strict=True)]
    exe = shutil.which(default_binary()) or default_binary()
    print(f"BMv2 {build.JSON.relative_to(build.ROOT)} on {exe}")
    print(
        f"packets per second ({args.packets} frames each, in {len(turns.per_cycle)} turns of"
        f" {args.burst}; switch CPU: all its threads, per frame)"
    )
    for i, n in enumerate(names):
        print(
            f"  {n:50s} {pps[i]:9.0f} pps  {100 * pps[i] / pps[0]:5.1f}% of plain"
            f"  CPU {cpu_us[i]:6.0f} us/frame"
        )
    full = min(pps[1:]) / pps[0]
    # The same ratio in each cycle of turns: how far the machine moves it within a run.
    paired = sorted(min(c[1:]) / c[0] for c in turns.per_cycle)
    print(
        f"  lowest pipeline / plain in each cycle of turns: {paired[0]:.2f} .. {paired[-1]:.2f}"
        f" (median {paired[len(paired) // 2]:.2f})"
    )
    icpn, bare = clients["ICPN client entries/s"], clients["bare grpcio entries/s"]
    print(f"P4Runtime writes ({args.entries} FIB entries, batches of {args.batch})")
    finsy = clients["finsy entries/s"]
    print(f"  ICPN client (pyctl.p4rt) {icpn:9.0f} entries/s")
    print(
        f"  finsy 0.30               {finsy:9.0f} entries/s  -> ICPN at {100 * icpn / finsy:.1f}%"
    )
    print(f"  bare grpcio client       {bare:9.0f} entries/s  -> ICPN at {100 * icpn / bare:.1f}%")
    ok = target("BMv2 full pipeline pps (lowest)", full, 0.70, False, "plain forwarding")
    ok &= target("P4Runtime ICPN client entries/s", icpn / bare, 0.80, False, "bare grpcio")
    if args.json:
        summary = {n: pps[i] for i, n in enumerate(names)} | clients
        print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
