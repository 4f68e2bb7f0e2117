"""The BMv2 data plane on a real simple_switch_grpc: restart, CRC-32, drops, two switches at once.

(The conformance vectors run on BMv2 through tests/test_vectors.py.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether

from pyctl.model.load import node_from_dict
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.p4rt import P4RuntimeError
from pyctl.targets.bmv2.dataplane import BMv2DataPlane
from pyctl.targets.bmv2.links import stale_namespaces

REASON = BMv2DataPlane.unavailable()
pytestmark = [
    pytest.mark.bmv2,
    pytest.mark.skipif(REASON is not None, reason=f"BMv2 data plane: {REASON}"),
]

MAC_IN = "02:00:00:00:0a:01"
MAC_OUT = "02:00:00:00:0a:02"
NEXT = "02:00:00:00:0b:01"


def transit_node(**extra: object) -> NodeConfig:
    data: dict[str, object] = {
        "name": "T",
        "role": "transit",
        "node_id": 7,
        "source": "fc00:a::1",
        "ports": [{"index": 1, "mac": MAC_IN}, {"index": 2, "mac": MAC_OUT}],
        "routes": [{"prefix": "fc00:b::/32", "port": 2, "mac": NEXT}],
        "local_sids": [{"sid": "fc00:a::/48", "behaviour": "End"}],
    }
    data.update(extra)
    return node_from_dict(data, "test")


def srv6_frame(hlim: int = 64) -> bytes:
    pkt = (
        Ether(src="02:00:00:00:09:09", dst=MAC_IN)
        / IPv6(src="2001:db8::1", dst="fc00:a::1", hlim=hlim)
        / IPv6ExtHdrSegmentRouting(addresses=["fc00:b::1", "fc00:a::1"], segleft=1)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=1000, dport=2000)
        / b"payload"
    )
    return bytes(pkt)


@pytest.fixture
def plane() -> Iterator[BMv2DataPlane]:
    dp = BMv2DataPlane()
    try:
        yield dp
    finally:
        dp.close()
        assert dp.links is None


def test_end_forwards_and_drop_reasons_come_back(plane: BMv2DataPlane) -> None:
    plane.configure(transit_node())
    res = plane.process(srv6_frame(), PacketContext(in_port=1))
    assert res.drop is None
    (out,) = res.outputs
    assert out.port == 2
    pkt = Ether(out.frame)
    assert pkt[Ether].src == MAC_OUT and pkt[Ether].dst == NEXT
    assert pkt[IPv6].dst == "fc00:b::1" and pkt[IPv6].hlim == 63
    assert pkt[IPv6ExtHdrSegmentRouting].segleft == 0
    dropped = plane.process(srv6_frame(hlim=1), PacketContext(in_port=1))
    assert dropped.drop == "hop-limit" and dropped.outputs == []


def test_restart_restores_every_entry(plane: BMv2DataPlane) -> None:
    plane.configure(transit_node())
    before = plane.process(srv6_frame(), PacketContext(in_port=1))
    assert plane.switch is not None
    entries_before = {t: len(plane.switch.read_table(t)) for t in ("fib", "my_sid", "port_mac")}
    old_pid = plane.process_.pid if plane.process_ else None
    plane.kill_switch()  # the switch crashes mid-run
    after = plane.process(srv6_frame(), PacketContext(in_port=1))  # the controller notices
    assert plane.restarts == 1
    assert plane.process_ is not None and plane.process_.pid != old_pid
    assert [(o.port, o.frame) for o in after.outputs] == [(o.port, o.frame) for o in before.outputs]
    entries_after = {t: len(plane.switch.read_table(t)) for t in entries_before}
    assert entries_after == entries_before == {"fib": 1, "my_sid": 1, "port_mac": 2}


def test_flow_label_hash_is_zlib_crc32(plane: BMv2DataPlane) -> None:
    node = transit_node(
        role="headend",
        routes=[{"prefix": "fc00::/16", "port": 2, "mac": NEXT}],
        local_sids=[],
        policies=[
            {
                "name": "p",
                "match": {"dst": "2001:db8::/32"},
                "sid_lists": [{"segments": ["fc00:b::1", "fc00:c::1"]}],
            }
        ],
    )
    plane.configure(node)
    for sport in (1, 2, 40000, 65535):
        frame = bytes(
            Ether(dst=MAC_IN)
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / UDP(sport=sport, dport=9)
        )
        (out,) = plane.process(frame, PacketContext(in_port=1)).outputs
        key = (
            bytes.fromhex("20010db8" + "00" * 11 + "01")
            + bytes.fromhex("20010db8" + "00" * 11 + "02")
            + bytes([17])
            + sport.to_bytes(2, "big")
            + (9).to_bytes(2, "big")
        )
        assert Ether(out.frame)[IPv6].fl == zlib.crc32(key) & 0xFFFFF


def test_two_switches_at_once() -> None:
    a, b = BMv2DataPlane(), BMv2DataPlane()
    try:
        a.configure(transit_node())
        b.configure(transit_node(name="U"))
        assert a.links and b.links and a.links.netns != b.links.netns
        for dp in (a, b):
            (out,) = dp.process(srv6_frame(), PacketContext(in_port=1)).outputs
            assert out.port == 2
    finally:
        a.close()
        b.close()
    assert not [ns for ns in stale_namespaces() if ns in (a.links, b.links)]


def test_switch_refusal_names_entity_and_field(plane: BMv2DataPlane) -> None:
    from pyctl.p4rt import LPM, TableEntry

    plane.configure(transit_node())
    assert plane.switch is not None
    dup = TableEntry(
        "fib",
        {"vrf": 0, "family": 6, "addr": LPM("fc00:b::", 32)},
        "set_nexthop",
        {"port": 2, "dmac": NEXT},
    )
    with pytest.raises(P4RuntimeError) as e:
        plane.switch.insert([dup])
    assert e.value.entity is not None and "fib" in e.value.entity
    assert e.value.code == "ALREADY_EXISTS"


def router_node(**extra: object) -> NodeConfig:
    data: dict[str, object] = {
        "name": "R",
        "role": "transit",
        "node_id": 9,
        "ports": [{"index": 1, "mac": MAC_IN}, {"index": 2, "mac": MAC_OUT}],
        "routes": [{"prefix": "2001:db8:2::/48", "port": 2, "mac": NEXT}],
    }
    data.update(extra)
    return node_from_dict(data, "test")


def contract_marks(q: int, rand32: int, kmin: int, kmax: int, pmax: float) -> bool:
    """docs/pipeline.md 5 as written there (a division), for the switch's (a product) to meet."""
    if q <= kmin:
        return False
    if q > kmax:
        return True
    return rand32 < int(pmax * (1 << 32)) * (q - kmin) // (kmax - kmin)


@pytest.mark.parametrize("pmax", [1.0, 0.2])
def test_ecn_byte_thresholds_at_their_edges(plane: BMv2DataPlane, pmax: float) -> None:
    """The widest thresholds the model accepts (Kmax 2^30), an odd span, every boundary of q,
    draws on both sides of T: the switch's cross-multiplication equals the contract's division."""
    kmin, kmax = 1_000_000_007, 1 << 30
    plane.configure(
        router_node(ecn={"enabled": True, "kmin_bytes": kmin, "kmax_bytes": kmax, "pmax": pmax})
    )
    top = int(pmax * (1 << 32))
    span = kmax - kmin
    frame = bytes(
        Ether(dst=MAC_IN)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", tc=0x02)
        / UDP(sport=1, dport=2)
    )
    for q in (kmin, kmin + 1, kmin + span // 3, kmax - 1, kmax, kmax + 1):
        t = top * max(0, min(q, kmax) - kmin) // span
        for rand32 in sorted({max(0, t - 1), min(t, (1 << 32) - 1), 0, (1 << 32) - 1}):
            ctx = PacketContext(in_port=1, rand32=rand32, egress_queue_bytes={2: q})
            (out,) = plane.process(frame, ctx).outputs
            marked = Ether(out.frame)[IPv6].tc & 3 == 3
            assert marked == contract_marks(q, rand32, kmin, kmax, pmax), (q, rand32, t)


def test_apn_insertion_past_65535_is_too_big(plane: BMv2DataPlane) -> None:
    """A 16-octet HBH inserted into a Payload Length of 65520 would make it 65536: too-big; 65519
    is not refused. (Frames this long exceed what a veth carries, MTU 65535 + 14 octets: they
    enter through the CPU port as packet-outs processed as if received on port 1.)"""
    from pyctl.targets.bmv2 import codes

    plane.configure(
        router_node(
            apn={
                "option_type": 0x3E,
                "classifiers": [{"match": {"dst": "2001:db8:2::/48"}, "apn_id": 0x10002}],
            }
        )
    )
    assert plane.switch is not None
    for payload, drop in ((65520, "too-big"), (65519, None)):
        frame = bytes(
            Ether(dst=MAC_IN)
            / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2")
            / UDP(sport=1, dport=2)
            / bytes(payload - 8)
        )
        assert len(frame) == 14 + 40 + payload
        plane._set_context(PacketContext(in_port=1))
        plane._drain()
        plane.switch.packet_out(
            frame, egress_port=0, in_port=1, mode=codes.PKTOUT_PIPELINE, reserved=0
        )
        res = plane._collect(timeout_s=1.0)
        if drop is not None:
            assert res.drop == drop and res.outputs == [], payload
            continue
        # 65519 leaves with Payload Length 65535 (65589 octets) on port 2; a harness whose links
        # cannot carry that sees no frame at all, and never a drop
        assert res.drop in (None, "no-verdict"), payload
        for out in res.outputs:
            assert out.port == 2 and Ether(out.frame)[IPv6].plen == 65535


def test_live_byte_depth_returns_to_zero(plane: BMv2DataPlane) -> None:
    """Outside test mode q is the bytes the switch counts in its egress queue: with Kmax 1 byte
    any packet still counted there marks the next one. After a burst (which queues, marks and
    loses frames), frames sent one at a time (each out before the next) find the queue empty, so
    none is marked: what ingress adds, egress takes back, lost frames included."""
    from pyctl.p4rt import Update
    from pyctl.targets.bmv2.writer import live_context

    plane.configure(router_node(ecn={"enabled": True, "kmin_bytes": 0, "kmax_bytes": 1}))
    assert plane.switch is not None
    plane.switch.write([Update("modify", live_context())])
    frame = bytes(
        Ether(dst=MAC_IN)
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", tc=0x02)
        / UDP(sport=1, dport=2)
    )
    plane._drain()
    for _ in range(200):
        plane.sockets[1].send(frame)
    plane._collect(timeout_s=1.0)
    for _ in range(20):
        plane._drain()
        plane.sockets[1].send(frame)
        (out,) = plane._collect(timeout_s=1.0).outputs
        assert out.port == 2 and Ether(out.frame)[IPv6].tc == 0x02


def _children(pid: int) -> list[int]:
    """Every descendant process of `pid` (from /proc: ps's tree without ps)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def test_sigterm_to_a_vector_run_leaves_nothing_behind() -> None:
    """`icpn vectors` killed by SIGTERM (what `kill`, systemd and CI timeouts send) stops its
    switch and removes its namespace and veths, as Ctrl-C does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyctl.cli", "vectors", "--dataplane", "bmv2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    netns = f"icpnt-bmv2-{proc.pid}-"
    switches: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not switches:
            time.sleep(0.2)
            switches = [p for p in _children(proc.pid) if "simple_switch" in _cmdline(p)]
        assert switches, "no switch started within 60 s"
        time.sleep(1.0)  # into the middle of a vector
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert "icpn: terminated" in err and "Traceback" not in err, err
        assert not [p for p in switches if Path(f"/proc/{p}").exists()]
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert netns not in names
        assert not list(Path(tempfile.gettempdir()).glob(f"icpn-bmv2-{proc.pid}-*"))
    finally:  # a failure must not leave what it found behind either
        proc.kill()
        proc.wait()
        for pid in switches:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        for name in stale_namespaces():
            subprocess.run(["ip", "netns", "del", name], check=False)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_counter_slot_keeps_its_first_flowmon_id(plane: BMv2DataPlane) -> None:
    """docs/p4.md limits: 5 takes slot 5; 1029 (= 5 + 1024) is dropped p4-limit and has no
    counts; 5's counts are its own. Expected bytes by hand: a 40-octet IPv6 header, an 8-octet
    HBH (AltMark alone), 40 + 8 + 11 octets of inner IPv6 + UDP + payload: IPv6 length 107."""
    from pyctl.targets.bmv2.counters import ifit_counters, slot_keepers

    plane.configure(transit_node(ifit={"role": "transit"}))

    def frame(word: int) -> bytes:
        hbh = bytes([41, 0, 0x12, 4]) + word.to_bytes(4, "big")
        inner = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2) / b"abc"
        outer = IPv6(src="2001:db8::1", dst="fc00:b::1", nh=0, plen=8 + len(inner))
        return bytes(Ether(src="02:00:00:00:09:09", dst=MAC_IN) / outer) + hbh + bytes(inner)

    assert plane.process(frame(5 << 12), PacketContext(in_port=1)).drop is None
    assert plane.process(frame(1029 << 12), PacketContext(in_port=1)).drop == "p4-limit"
    assert plane.process(frame(5 << 12 | 1 << 11), PacketContext(in_port=1)).drop is None
    assert plane.switch is not None
    assert slot_keepers(plane.switch, [5, 6]) == {5: 5}
    assert ifit_counters(plane.switch, [5, 1029]) == {(5, 0): (1, 99), (5, 1): (1, 99)}


# A child process's start: one plane configured, its switch pid, namespace and run directory
# printed on the first line (what the test removes should the child leave them).
CHILD_PLANE = """
import os
import sys

from pyctl.model.load import node_from_dict
from pyctl.targets.bmv2.dataplane import BMv2DataPlane

node = node_from_dict(
    {"name": "X", "role": "transit", "node_id": 1, "source": "fc00:a::1",
     "ports": [{"index": 1, "mac": "02:00:00:00:0a:01"}]},
    "test",
)
plane = BMv2DataPlane()
plane.configure(node)
print(plane.process_.pid, plane.links.netns, plane.run_dir, flush=True)
"""

CHILD_NEVER_CLOSES = (
    CHILD_PLANE
    + """
raise RuntimeError("the caller failed before close()")
"""
)


def _remove_plane_left(pid: int, netns: str, run_dir: str) -> None:
    """Whatever of a child's plane is still there: a failing test leaves nothing either."""
    if "simple_switch" in _cmdline(pid):
        os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
    shutil.rmtree(run_dir, ignore_errors=True)


def test_a_plane_never_closed_is_closed_when_python_exits() -> None:
    """A caller that raises between configure() and close() (no `with`, no `finally`): the
    switch runs in a session of its own, so it outlived Python (four simple_switch_grpc were
    found left so); now the plane is closed at exit: switch, namespace and run directory."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_NEVER_CLOSES],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    pid_text, netns, run_dir = proc.stdout.split()
    pid = int(pid_text)
    try:
        assert proc.returncode == 1 and "the caller failed before close()" in proc.stderr
        assert not Path(f"/proc/{pid}").exists() or "simple_switch" not in _cmdline(pid)
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert netns not in names
        assert not Path(run_dir).exists()
    finally:
        _remove_plane_left(pid, netns, run_dir)


CHILD_FORKS = (
    CHILD_PLANE
    + """
child = os.fork()
if child == 0:
    sys.exit(0)  # exit handlers run in the forked copy too
os.waitpid(child, 0)
print("alive" if plane.process_.alive() else "gone", flush=True)
plane.close()
"""
)


def test_a_forked_child_exiting_leaves_its_parents_plane_alone() -> None:
    """The exit hook closes only the planes of the process that made them: a forked copy that
    exits normally runs the same hooks, and must not stop its parent's switch (nor hang in
    the parent's gRPC channel, which it did without the check)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_FORKS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,  # the child and its forked copy: one group to kill
    )
    assert proc.stdout is not None
    pid_text, netns, run_dir = proc.stdout.readline().split()
    try:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.split() == ["alive"]
    finally:
        with contextlib.suppress(ProcessLookupError):  # (gone already when it passed)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _remove_plane_left(int(pid_text), netns, run_dir)
