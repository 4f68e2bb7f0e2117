"""A network over two servers with Mininet's cluster mode (pyctl.net.cluster, docs/cluster.md).

The second "server" is a network namespace of this machine with its own address and its own
sshd (a test-only config, host key and root key in a temp dir, listening only on that address).
It shares this machine's filesystem and ICPN install, which is what a real second server must
have at the same path. The minimal topology is spread by the cluster mode: pe1 (with ha and the
collector) here, pe2 (with hb) there, so the SRv6 path pe1 -> pe2 and the pe2 -> collector link
cross between the servers over VXLAN.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyctl.controller.plan import make_plan
from pyctl.model.topology import Server, load_topology
from pyctl.net.emulation import Emulation, port_rates
from pyctl.net.runners import EBPFSwitchRunner, SoftwareSwitchRunner, port_buffers
from pyctl.targets.ebpf import EBPFDataPlane

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = ROOT / "topologies" / "minimal.yaml"
# RFC 2544's benchmarking range: never routed, used only between this test's two namespaces
HERE_IP, SERVER_IP = "198.18.147.1", "198.18.147.2"
NETNS = f"icpnsrv{os.getpid()}"
VETH = f"icsv{os.getpid() % 100000}"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, sshd)"
    for tool, package in (("/usr/sbin/sshd", "openssh-server"), ("ssh", "openssh-client"),
                          ("sudo", "sudo"), ("mnexec", "mininet")):  # fmt: skip
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    return EBPFDataPlane.unavailable()


@dataclass
class SecondServer:
    address: str
    ssh_config: Path
    netns: str


def _netns_pids(netns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture
def second_server(tmp_path: Path) -> Iterator[SecondServer]:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    d = tmp_path / "sshd"
    d.mkdir(mode=0o700)
    made_run_sshd = not Path("/run/sshd").exists()
    sshd_pid: int | None = None
    try:
        for key in ("hostkey", "userkey"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
            )
        shutil.copy(d / "userkey.pub", d / "authorized_keys")
        subprocess.run(["ip", "netns", "add", NETNS], check=True)
        ip = ["ip", "link", "add", f"{VETH}a", "mtu", "9000", "type", "veth", "peer", "name"]
        subprocess.run([*ip, f"{VETH}b", "mtu", "9000", "netns", NETNS], check=True)
        for cmd in (
            ["ip", "addr", "add", f"{HERE_IP}/30", "dev", f"{VETH}a"],
            ["ip", "link", "set", f"{VETH}a", "up"],
            ["ip", "-n", NETNS, "addr", "add", f"{SERVER_IP}/30", "dev", f"{VETH}b"],
            ["ip", "-n", NETNS, "link", "set", f"{VETH}b", "up"],
            ["ip", "-n", NETNS, "link", "set", "lo", "up"],
        ):
            subprocess.run(cmd, check=True)
        (d / "sshd_config").write_text(
            f"ListenAddress {SERVER_IP}:22\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n"
            "StrictModes no\nMaxSessions 200\nMaxStartups 100\n"
        )
        (d / "ssh_config").write_text(
            f"Host {SERVER_IP}\n  IdentityFile {d}/userkey\n  IdentitiesOnly yes\n"
            "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  LogLevel ERROR\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        # the server's own filesystem view: its runs/ is an empty tmpfs, so a run directory
        # there is not this machine's (icpn run makes it, brings its files back, removes it)
        (tmp_path / "runs").mkdir()
        sshd = f"/usr/sbin/sshd -f {d}/sshd_config -E {d}/sshd.log"
        subprocess.run(
            ["ip", "netns", "exec", NETNS, "unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs icpn-test {tmp_path / 'runs'} && exec {sshd}"], check=True,
        )  # fmt: skip
        # sshd creates its pid file, then writes it: wait for the number, not the file
        deadline = time.monotonic() + 10
        pid_text = ""
        while not pid_text.strip().isdigit() and time.monotonic() < deadline:
            time.sleep(0.05)
            pid_text = (d / "sshd.pid").read_text() if (d / "sshd.pid").exists() else ""
        if not pid_text.strip().isdigit():
            log = (d / "sshd.log").read_text() if (d / "sshd.log").exists() else ""
            pytest.fail(f"sshd wrote no pid in 10 s: {log.strip()[-300:]}")
        sshd_pid = int(pid_text)
        yield SecondServer(SERVER_IP, d / "ssh_config", NETNS)
    finally:
        for pid in [*([sshd_pid] if sshd_pid else []), *_netns_pids(NETNS)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{VETH}a"], capture_output=True)
        if made_run_sshd:
            shutil.rmtree("/run/sshd", ignore_errors=True)


def _assert_nothing_left(server: SecondServer, prefix: str) -> None:
    # the server: only its sshd (and nothing of the run's) in its namespace, only its veth
    sshd = int((server.ssh_config.parent / "sshd.pid").read_text())
    deadline = time.monotonic() + 5  # ssh masters and sessions wind down
    while time.monotonic() < deadline and set(_netns_pids(server.netns)) - {sshd}:
        time.sleep(0.1)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in _netns_pids(server.netns)}
    assert set(left) == {sshd}, left
    links = subprocess.run(
        ["ip", "-n", server.netns, "-o", "link", "show"], capture_output=True, text=True
    ).stdout
    assert [ln.split(": ")[1].split("@")[0] for ln in links.splitlines()] == ["lo", f"{VETH}b"]
    # here: no process of the run, no interface or registry entry with its prefix
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(server.ssh_config) not in ps and "cluster_agent" not in ps
    assert prefix not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not Path(f"/run/icpn/{prefix}.json").exists()
    assert not list(Path("/tmp").glob(f"{prefix}-agent-*"))


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(next(ln for ln in status.splitlines() if ln.startswith("PPid:")).split()[1])
        out.append(pid)
    return out


@pytest.mark.parametrize("plane", ["ebpf", "reference"])
def test_ping_crosses_two_servers(second_server: SecondServer, tmp_path: Path, plane: str) -> None:
    """pe2 and hb on the second server: ha pings hb over the SRv6 path, the link pe1-pe2 crosses
    the servers, and its delay (1 ms each way, topologies/minimal.yaml) is in the round trip.
    Both switch planes: the XDP program and the Python reference switch (pe2's in its agent)."""
    from pyctl.net.cluster import Cluster, ClusterSpec

    topo = load_topology(MINIMAL)
    plan = make_plan(topo)
    spec = ClusterSpec((Server("localhost"), Server(SERVER_IP)), second_server.ssh_config)

    def runner(name: str) -> EBPFSwitchRunner | SoftwareSwitchRunner:
        rates = port_rates(topo, plan, name)
        if plane == "reference":
            return SoftwareSwitchRunner(name, "reference", rates)
        return EBPFSwitchRunner(name, rates, port_buffers(topo, plan, name))

    emu = Emulation(
        topo, plan, tmp_path / "run", runner, log=lambda _m: None, cluster=Cluster(spec)
    )
    try:
        emu.start()
        assert emu.cluster is not None
        # SwitchBinPlacer: one switch a server in order; hosts beside their switch; the
        # collector on the first server whatever its switch
        assert emu.cluster.placement == {
            "pe1": "localhost", "ha": "localhost", "col": "localhost",
            "pe2": SERVER_IP, "hb": SERVER_IP,
        }  # fmt: skip
        # hb's shell runs under the second server's sshd (one PID space here: the test can
        # look), ha's under this process
        sshd = int((second_server.ssh_config.parent / "sshd.pid").read_text())
        assert sshd in _ancestors(emu.nodes["hb"].pid)
        assert sshd not in _ancestors(emu.nodes["ha"].pid)
        out = emu.nodes["ha"].cmd(f"ping -6 -n -c 5 -i 0.2 -W 2 {plan.hosts['hb'].address}")
        rtts = [float(x.split("=")[1]) for x in out.split() if x.startswith("time=")]
        assert len(rtts) == 5, out
        # 2 x 1 ms on pe1-pe2 (the element on pe1's server delays both directions)
        assert 2.0 <= min(rtts) < 10.0, rtts
        stats = emu.link_stats()["pe1-pe2"]
        assert stats.a2b.tx >= 5 and stats.b2a.tx >= 5, stats
        # pe2's plane runs in its agent there, pe1's in this process
        assert type(emu.runners["pe2"]).__name__.startswith("Remote")
        assert not type(emu.runners["pe1"]).__name__.startswith("Remote")
    finally:
        emu.stop()
    # pe2's final counters came back from its agent: 5 echo requests and 5 replies crossed it
    counts = json.loads((tmp_path / "run" / "nodes" / "pe2.stats.json").read_text())["counts"]
    assert counts["in"] >= 10, counts
    _assert_nothing_left(second_server, emu.prefix)


def test_icpn_run_traces_the_path_over_two_servers(
    second_server: SecondServer, tmp_path: Path
) -> None:
    """`icpn run --servers`: the probe flow's IFIT trace names pe1 (here) and pe2 (the second
    server), the collector here received it, and the report is written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyctl.cli", "run", str(MINIMAL), "--no-cli", "--seconds", "2",
         "--runs", str(tmp_path / "runs"), "--servers", f"localhost,{SERVER_IP}",
         "--ssh-config", str(second_server.ssh_config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert f"servers: localhost, {SERVER_IP}" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    traces = {t["flow"]: t for t in report["ifit"]}
    assert traces["probe"]["path"] == ["pe1", "pe2"], report["ifit"]
    assert traces["probe"]["delay_us"]["count"] > 0
    # the headend's and the egress's counters both came back (pe2's from its agent)
    assert {"pe1", "pe2"} <= set(report["switches"])
    # hb's receiver ran on the second server and wrote its statistics there: icpn run brought
    # them back (the probe flow's received rate is in the report) and removed the directory
    for phase in report["phases"]:  # single-path, multi-path
        (probe,) = phase["flows"]
        assert probe["received_mbit"] > 0, phase
        assert (run_dir / f"{phase['name']}-rx-hb-4791.json").exists()
    sshd = (second_server.ssh_config.parent / "sshd.pid").read_text().strip()
    there = subprocess.run(
        ["nsenter", "-t", sshd, "-m", "ls", "-A", str(tmp_path / "runs")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert there.stdout == "", there.stdout
    _assert_nothing_left(second_server, f"ic{proc.pid % 4096:03x}")  # Emulation's new_prefix


def test_a_server_that_refuses_ssh_is_one_line(second_server: SecondServer, tmp_path: Path) -> None:
    """A key the server does not accept: icpn run names the server and ssh's reason in one line
    and leaves nothing behind."""
    d = tmp_path / "other"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "k")], check=True)
    config = d / "ssh_config"
    config.write_text(
        second_server.ssh_config.read_text().replace(
            str(second_server.ssh_config.parent / "userkey"), str(d / "k")
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyctl.cli", "run", str(MINIMAL), "--no-cli", "--runs",
         str(tmp_path / "runs"), "--servers", f"localhost,{SERVER_IP}", "--ssh-config",
         str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, err
    assert f"server '{SERVER_IP}': ssh root@{SERVER_IP} failed" in lines[0]
    assert "Permission denied" in lines[0]
    _assert_nothing_left(second_server, f"ic{proc.pid % 4096:03x}")


# -- servers: and --servers (no root needed) ------------------------------------------------------

TOPO_WITH = MINIMAL.read_text()


def _topo(tmp_path: Path, servers: str) -> Path:
    p = tmp_path / "t.yaml"
    p.write_text(TOPO_WITH + servers)
    return p


def test_servers_section(tmp_path: Path) -> None:
    topo = load_topology(
        _topo(tmp_path, "servers:\n  - here\n  - {name: 10.0.0.2, nodes: [pe2]}\n")
    )
    assert topo.servers == (Server("here"), Server("10.0.0.2", ("pe2",)))


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ("servers:\n  - here\n  - {name: b, nodes: [nope]}\n", "'nope' is not a node"),
        ("servers:\n  - {name: a, nodes: [pe2]}\n  - {name: b, nodes: [pe2]}\n", "already on"),
        ("servers:\n  - a\n  - a\n", "listed twice"),
        ("servers:\n  - 'a b'\n", "not a host name"),
        ("servers:\n  - {name: a, cores: 2}\n", "unknown field 'cores'"),
    ],
)
def test_servers_section_errors(tmp_path: Path, servers: str, message: str) -> None:
    from pyctl.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_topology(_topo(tmp_path, servers))
    assert message in str(e.value) and "servers" in str(e.value) and "\n" not in str(e.value)


def test_servers_option_replaces_the_list_and_keeps_pins(tmp_path: Path) -> None:
    from pyctl.net.cluster import cluster_spec

    topo = load_topology(_topo(tmp_path, "servers:\n  - a\n  - {name: b, nodes: [pe2]}\n"))
    spec = cluster_spec(topo, "a,c,b")
    assert spec is not None
    assert spec.servers == (Server("a"), Server("c"), Server("b", ("pe2",)))
    assert cluster_spec(load_topology(MINIMAL), None) is None  # one machine


def test_placement_by_mininets_switch_bin_placer(tmp_path: Path) -> None:
    """Two switches over two servers: one each, in order (SwitchBinPlacer's bins); each host
    beside its switch; the collector on the first server, though its link goes to pe2."""
    pytest.importorskip("mininet.examples.cluster")
    from pyctl.net.cluster import ClusterSpec, place

    topo = load_topology(MINIMAL)
    plan = make_plan(topo)
    spec = ClusterSpec((Server("a"), Server("b")))
    where = place(spec, topo, list(plan.switches), list(plan.hosts))
    assert where == {"pe1": "a", "ha": "a", "col": "a", "pe2": "b", "hb": "b"}
    pinned = ClusterSpec((Server("a"), Server("b", ("pe1",))))
    where = place(pinned, topo, list(plan.switches), list(plan.hosts))
    assert where["pe1"] == "b" and where["ha"] == "b" and where["col"] == "a"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--servers", "onlyone"], "--servers: 'onlyone': give two or more servers"),
        (["--servers", "a,,b"], "give two or more servers"),
        (["--servers", "a,a"], "names a server twice"),
        (["--servers", "a,b c"], "'b c' is not a host name"),
        (["--servers", "a,b", "--ssh-config", "/nonexistent"], "--ssh-config"),
        (["--ssh-config", str(MINIMAL)], "given without servers"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("icpn run checks root before its options")
    proc = subprocess.run(
        [sys.executable, "-m", "pyctl.cli", "run", str(MINIMAL), "--no-cli", *args,
         "--runs", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and message in err[0], proc.stderr
    assert not list(tmp_path.iterdir())  # refused before anything started
