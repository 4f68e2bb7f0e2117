"""End-to-end on live eBPF nodes (pyctl.net.runners.EBPFSwitchRunner): what only they have,
links policed at line rate by the nodes' virtual queues, application-side APN from a host's own
tc program, in-place re-push; tests/test_e2e.py runs the shared behaviours on both data planes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting

from pyctl.controller.controller import Controller
from pyctl.errors import ICPNError
from pyctl.model.topology import load_topology
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner
from pyctl.net.scenario import choose_runner
from pyctl.packets import APNOption
from pyctl.targets.ebpf import EBPFDataPlane
from pyctl.testing import Network, watch_until_restart

pytestmark = pytest.mark.root

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


def test_application_side_apn_from_the_hosts_own_tc_program(
    icpn_network: Callable[..., Network],
) -> None:
    """A host socket with SO_MARK 7 gets its APN option from the host's own tc egress program
    (apn.socket_marks); the headend carries that APN-ID in the outer header over SRv6, and the
    delivered packet keeps the host's option. An unmarked socket's packet leaves unmarked."""
    marks = {"apn": {"socket_marks": [{"mark": 7, "apn_id": 0x00050006}]}}
    net = icpn_network(TOPOS / "minimal.yaml", dataplane="ebpf", features=marks)
    hp = net.host_apn("ha")
    with net.capture("pe2", 1) as wire, net.capture("hb", 1) as host:
        net.send_marked("ha", "hb", b"marked", dport=9000, mark=7)
        net.send_marked("ha", "hb", b"plain", dport=9001, mark=0)
    assert hp.marked() == 1
    to_b = [p for p in wire.packets if IPv6 in p and p[IPv6].dst == "fc00:0:2:d6::"]  # to pe2
    assert [p[APNOption].apn_id for p in to_b if APNOption in p] == [0x00050006]
    assert len(to_b) == 2 and all(IPv6ExtHdrSegmentRouting in p for p in to_b)
    got = {p[UDP].dport: p for p in host.packets if UDP in p and p[IPv6].dst == net.address("hb")}
    assert got[9000][APNOption].apn_id == 0x00050006  # the host's own option, end to end
    assert bytes(got[9000][UDP].payload) == b"marked"
    assert IPv6ExtHdrHopByHop not in got[9001] and bytes(got[9001][UDP].payload) == b"plain"


def _port_to(net: Network, switch: str, peer: str) -> int:
    return next(p for (n, p), (q, _) in net.plan.wiring.items() if n == switch and q == peer)


def test_a_full_virtual_queue_tail_drops_at_the_links_capacity(
    icpn_network: Callable[..., Network],
) -> None:
    """XDP_REDIRECT bypasses qdiscs, so the node polices each port at its line rate: a burst
    into the 10 Mbit/s inter-DC link (a 16-frame buffer here) passes the buffer's worth plus
    what the line drains meanwhile; the rest is dropped and counted as `queue-full`."""
    topo = load_topology(TOPOS / "cross-dc.yaml")
    links = tuple(
        dataclasses.replace(lk, queue_packets=16) if {lk.a, lk.b} == {"leaf-a", "dci"} else lk
        for lk in topo.links
    )
    net = icpn_network(TOPOS / "cross-dc.yaml", dataplane="ebpf", links=links)
    port = _port_to(net, "leaf-a", "dci")
    buffer = 16 * (9000 + 14)
    frame = net.roce("gpu-a1", "gpu-b1", qp=0x301, size=1000)
    t0 = time.monotonic()
    net.send("gpu-a1", frame, count=300)
    elapsed = time.monotonic() - t0
    time.sleep(0.2)
    st = net.switch_stats("leaf-a")
    out = st["ports"][str(port)]
    assert out["queue_drops"] > 0
    assert out["tx_packets"] + out["queue_drops"] == 300
    assert st["drops"]["queue-full"] == out["queue_drops"]
    line = 10e6 / 8 * elapsed  # bytes the 10 Mbit/s line drained while the burst arrived
    big = out["tx_bytes"] / out["tx_packets"]
    assert buffer - big <= out["tx_bytes"] <= buffer + line + big, (out, elapsed)


def test_repush_rewrites_the_tables_or_restores_the_program_and_stop_releases_everything(
    icpn_network: Callable[..., Network],
) -> None:
    net = icpn_network(TOPOS / "minimal.yaml", dataplane="ebpf")
    runner = net.runners["pe1"]
    assert isinstance(runner, EBPFSwitchRunner)
    node = net.emu.nodes["pe1"]
    ifname = net.emu.ifnames[("pe1", 2)]
    cfg = net.plan.switches["pe1"]

    def prog_id() -> int | None:
        xdp = json.loads(node.cmd(f"ip -j -d link show dev {ifname}"))[0].get("xdp")
        return int(xdp["prog"]["id"]) if xdp else None

    fds = _bpf_fds()
    before = prog_id()
    assert before is not None
    # The controller's re-push of a running node rewrites its tables: same program, and its
    # counters carry on. Without its policy pe1 has nothing to send hb's traffic into (no
    # route for hb's address: the echo requests are dropped); with it back, they flow again.
    assert net.ping("ha", "hb", count=2) == 2
    seen = runner.stats()["counts"]["in"]
    runner.apply(dataclasses.replace(cfg, policies=()))
    assert prog_id() == before and runner.stats()["counts"]["in"] >= seen > 0
    assert net.ping("ha", "hb", count=2) == 0
    runner.apply(cfg)
    assert net.ping("ha", "hb", count=2) == 2 and prog_id() == before
    # A node whose program is gone (taken off a port) gets a fresh one; the old one and its
    # maps are released.
    for mode in ("xdp", "xdpgeneric", "xdpdrv"):  # whichever mode it was put on in
        node.cmd(f"ip link set dev {ifname} {mode} off 2>/dev/null")
    assert not runner.alive()
    runner.apply(cfg)
    after = prog_id()
    assert after is not None and after != before
    assert _bpf_fds() == fds
    assert net.ping("ha", "hb", count=2) == 2
    runner.stop()
    assert prog_id() is None
    assert (net.emu.run_dir / "nodes" / "pe1.stats.json").is_file()
    assert _bpf_fds() < fds
    assert not [t for t in threading.enumerate() if t.name == "icpn-agent-pe1"]


def _bpf_fds() -> int:
    """This process's open BPF program and map descriptors."""
    n = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            n += os.readlink(fd).startswith(("anon_inode:bpf-prog", "anon_inode:bpf-map"))
        except OSError:
            continue
    return n


def _links_with_prefix(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [n for line in out.splitlines() if (n := line.split(": ")[1]).startswith(prefix)]


def test_run_on_ebpf_writes_a_report_and_leaves_nothing(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "pyctl.cli", "run", str(TOPOS / "minimal.yaml")]
    argv += ["--dataplane", "ebpf", "--seconds", "2", "--no-cli", "--runs", str(tmp_path)]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    ) as proc:
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    prefix = f"ic{proc.pid % 4096:03x}"  # what that run named its nodes and links
    assert stdout.splitlines()[0].startswith("icpn run: minimal: data planes: ebpf — eBPF")
    (run_dir,) = tmp_path.iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["dataplane"] == "ebpf"
    single, multi = report["phases"]
    assert (single["name"], multi["name"]) == ("single-path", "multi-path")
    (flow,) = multi["flows"]
    assert flow["received_mbit"] > 0.8 * flow["sent_mbit"] > 0
    assert multi["switches"]["pe1"]["forwarded"] > 100  # the eBPF nodes' own counters
    (trace,) = report["ifit"]
    assert trace["path"] == ["pe1", "pe2"] and trace["delay_us"]["count"] > 10
    assert sorted(p.name for p in (run_dir / "nodes").iterdir()) == [
        "pe1.stats.json",
        "pe2.stats.json",
    ]
    assert _links_with_prefix(prefix) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(run_dir) not in ps  # no sender, receiver or collector of the run is left
    assert f"mininet:{prefix}" not in ps  # nor a node's shell
    assert not (Path("/run/icpn") / f"{prefix}.json").exists()
    pinned = Path("/sys/fs/bpf")
    assert not (pinned.is_dir() and any("icpn" in p.name for p in pinned.iterdir()))


def test_choose_runner_prefers_ebpf_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EBPFDataPlane.unavailable() is None  # root and a built object: the suite's setting
    name, factory, why = choose_runner("auto")
    assert (name, type(factory("s1"))) == ("ebpf", EBPFSwitchRunner)
    assert "chosen because the eBPF data plane can run here" in why
    assert choose_runner("reference")[0] == "reference"
    monkeypatch.setattr(EBPFDataPlane, "unavailable", classmethod(lambda cls: "no BPF here"))
    name, factory, why = choose_runner("auto")
    assert (name, type(factory("s1"))) == ("reference", SoftwareSwitchRunner)
    assert why.endswith("cannot run here: no BPF here")
    with pytest.raises(ICPNError, match="--dataplane ebpf: .*no BPF here"):
        choose_runner("ebpf")
    with pytest.raises(ICPNError, match="--dataplane 'bmx2': the switch nodes run auto, ebpf"):
        choose_runner("bmx2")


def test_the_controller_restores_an_ebpf_node_whose_program_was_removed(
    icpn_network: Callable[..., Network],
) -> None:
    """Someone takes XDP off one of pe2's ports: the node is not alive any more, the network
    breaks, and the controller's watch re-pushes pe2's configuration onto every port."""
    net = icpn_network(TOPOS / "minimal.yaml", dataplane="ebpf")
    runners = {n: r for n, r in net.runners.items() if isinstance(r, EBPFSwitchRunner)}
    assert all(r.alive() for r in runners.values())
    ctl = Controller(dict(net.plan.switches), runners, log=lambda _m: None)
    assert ctl.reconcile() == []
    ifname = net.emu.ifnames[("pe2", 1)]
    net.emu.nodes["pe2"].cmd(f"ip link set dev {ifname} xdpgeneric off")
    assert not runners["pe2"].alive()
    assert net.ping("ha", "hb", count=2) == 0
    watch_until_restart(ctl)
    assert ctl.restarts == {"pe2": 1}
    assert runners["pe2"].alive()
    assert net.ping("ha", "hb", count=2) == 2
