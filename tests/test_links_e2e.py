"""Links behave like links in whole networks: the link model (delay, loss, rate, queue,
run-time changes) holds for frames forwarded by eBPF nodes (XDP_REDIRECT, which bypasses every
qdisc), by reference software switches, and by BMv2 where installed, on this kernel whatever it
lacks (no netem needed): every link runs through the run's link element (docs/topology.md).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyctl import kernelfeatures
from pyctl.testing import Network
from pyctl.toolchain import detect

pytestmark = pytest.mark.root

TOPOS = Path(__file__).resolve().parent.parent / "topologies"
HOP_MS = 15.0


def _two_hop(tmp_path: Path, **backbone: object) -> Path:
    """minimal.yaml with its path ha - pe1 -15 ms- pe2 -15 ms- hb (two delayed hops)."""
    text = (TOPOS / "minimal.yaml").read_text()
    extra = "".join(f", {k}: {v}" for k, v in backbone.items())
    text = text.replace(
        "{a: pe1, b: pe2, bw_mbit: 100, delay_ms: 1}",
        f"{{a: pe1, b: pe2, delay_ms: {HOP_MS}{extra}}}",
    ).replace("{a: pe2, b: hb, bw_mbit: 100}", f"{{a: pe2, b: hb, delay_ms: {HOP_MS}}}")
    path = tmp_path / "two-hop.yaml"
    path.write_text(text)
    return path


PLANES = [
    "reference",
    "ebpf",
    pytest.param(
        "bmv2",
        marks=pytest.mark.skipif(
            detect().bmv2_reason is not None, reason=f"bmv2: {detect().bmv2_reason}"
        ),
    ),
]


def _rtt_case(
    icpn_network: Callable[..., Network], tmp_path: Path, plane: str, element: str = "icpn"
) -> None:
    """Expected: an echo crosses each 15 ms link twice (request and reply), so the links add
    2 x (15 + 15) = 60 ms to the round trip. What the switches themselves take (microseconds on
    eBPF, a fraction of a millisecond per packet for the Python software switch) is measured on
    the same network with both links at 0 ms; the median of 60 pings minus that median of 60
    must be within 2% of 60 ms."""
    net = icpn_network(_two_hop(tmp_path), dataplane=plane, link_element=element)
    net.ping("ha", "hb", count=2)  # neighbours and the software switches warm
    rtts = net.rtts_ms("ha", "hb", count=60)
    net.set_link("pe1", "pe2", delay_ms=0.0)
    net.set_link("pe2", "hb", delay_ms=0.0)
    base = net.rtts_ms("ha", "hb", count=60)
    assert len(rtts) >= 55 and len(base) >= 55, (rtts, base)
    added = statistics.median(rtts) - statistics.median(base)
    assert abs(added - 60.0) <= 0.02 * 60.0, (added, rtts, base)
    assert net.emu.element_name == ("icpn_linkd" if element == "icpn" else "netem")


@pytest.mark.parametrize("plane", PLANES)
def test_rtt_over_two_delayed_hops(
    icpn_network: Callable[..., Network], tmp_path: Path, plane: str
) -> None:
    _rtt_case(icpn_network, tmp_path, plane)


@pytest.mark.needs_kernel("netem", "mirred")
def test_rtt_over_two_delayed_hops_with_netem_as_the_element(
    icpn_network: Callable[..., Network], tmp_path: Path
) -> None:
    """The same links with netem in the links namespace (where the kernel has it): eBPF nodes'
    redirected frames pass through it too."""
    _rtt_case(icpn_network, tmp_path, "ebpf", "netem")


def test_netem_element_is_refused_with_the_missing_option_where_absent(tmp_path: Path) -> None:
    """On a kernel without netem, asking for it is one line naming the kernel option (and
    nothing is built); with netem the network comes up and says netem applies the links."""
    from pyctl.controller.plan import make_plan
    from pyctl.errors import ICPNError
    from pyctl.model.topology import load_topology
    from pyctl.net.emulation import Emulation

    topo = load_topology(_two_hop(tmp_path))
    missing = kernelfeatures.missing("netem") or kernelfeatures.missing("mirred")
    if missing is None:
        pytest.skip("this kernel has netem: test_rtt_..._with_netem_as_the_element runs instead")
    with pytest.raises(ICPNError) as err:
        Emulation(topo, make_plan(topo), tmp_path, lambda _n: None, link_element="netem")  # type: ignore[arg-type,return-value]
    assert "kernel lacks CONFIG_NET_" in str(err.value) and "\n" not in str(err.value)


def test_link_changed_at_run_time_changes_the_rtt_within_a_second(
    icpn_network: Callable[..., Network], tmp_path: Path
) -> None:
    """15 -> 40 ms on pe1-pe2: the round trip goes from 60 ms to 2 x (40 + 15) = 110 ms.
    Every echo sent after the change (the first within a second of it) shows the new delay
    (old frames in flight keep theirs; none of these was in flight)."""
    net = icpn_network(_two_hop(tmp_path), dataplane="ebpf")
    net.ping("ha", "hb", count=2)
    before = statistics.median(net.rtts_ms("ha", "hb", count=10))
    assert abs(before - 60.0) <= 1.2
    net.set_link("pe1", "pe2", delay_ms=40.0)
    after = net.rtts_ms("ha", "hb", count=10, interval_s=0.1)  # the first leaves at once
    assert len(after) == 10 and min(after) > 100.0, after
    assert abs(statistics.median(after) - 110.0) <= 0.02 * 110.0, after
    net.emu.link_down("pe1", "pe2")
    assert net.ping("ha", "hb", count=2) == 0
    net.emu.link_up("pe1", "pe2")
    assert net.ping("ha", "hb", count=2) == 2


def test_rate_limited_backbone_carries_tcp_at_its_rate(
    icpn_network: Callable[..., Network], tmp_path: Path
) -> None:
    """A 40 Mbit/s backbone (the element serialises at the rate; 200-frame queue, one
    bandwidth-delay product at the 60 ms round trip): iperf3 TCP through eBPF nodes fills it.

    Expected goodput, from the frame sizes: -M 1400 with TCP timestamps (12 option bytes) puts
    1388 payload bytes in a segment; the inner frame is 14 + 40 (IPv6) + 32 (TCP) + 1388 = 1474
    bytes, and pe1's H.Encaps adds an outer IPv6 header (40) and a one-SID SRH (8 + 16) on the
    backbone (SPEC 1; this flow matches no APN or IFIT rule, so no Hop-by-Hop options): 1538 bytes
    serialised per 1388 delivered, 40 x 1388 / 1538 = 36.10 Mbit/s for a full pipe. 95% of it
    leaves room for slow start's overshoot and a busy 2-core CI machine."""
    net = icpn_network(_two_hop(tmp_path, bw_mbit=40, queue_packets=200), dataplane="ebpf")
    hb, ha = net.emu.nodes["hb"], net.emu.nodes["ha"]
    server = hb.popen(["iperf3", "-s", "-1", "-B", net.address("hb")], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = ha.cmd(f"iperf3 -6 -c {net.address('hb')} -t 6 -O 2 -M 1400 -J")
    finally:
        server.kill()
        server.wait()
    import json

    mbit = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    stats = net.emu.link_stats()["pe1-pe2"]
    # the derivation's frame size: data frames are 1538 bytes, the handshake's few are smaller
    assert 1520 <= stats.a2b.rx_bytes / stats.a2b.rx <= 1538, stats.a2b
    full_pipe = 40 * 1388 / 1538
    assert 0.95 * full_pipe <= mbit <= 1.005 * full_pipe, (mbit, full_pipe)
    assert stats.a2b.tx > 0
