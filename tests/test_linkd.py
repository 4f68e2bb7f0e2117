"""The link element (icpn_linkd, pyctl.net.linkd) between two namespaces: real frames through
the real program. Every expected value is derived from the configured model (delay, loss
probability, rate, queue limit), never taken from a previous run.

Layout per test: namespace a (eth0 10.0.0.1) <-veth-> La [links ns: icpn_linkd] Lb <-veth->
namespace b (eth0 10.0.0.2); names carry this process's PID, so concurrent runs do not collide.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import time
from collections.abc import Iterator

import pytest
from link_rig import LINK, Rig, link_rig

from pyctl import netns
from pyctl.errors import ConfigError
from pyctl.model.link import GilbertElliott, LinkModel
from pyctl.net.linkd import (
    LinkdError,
    Sink,
    generate,
)

pytestmark = pytest.mark.root

PREFIX = "icpnt-lk"


@pytest.fixture
def rig() -> Iterator[Rig]:
    with link_rig(PREFIX) as r:
        yield r


def ping_rtts(ns: netns.Netns, count: int, interval: float = 0.01, wait: float = 1) -> list[float]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns.name, "ping", "-n", "-c", str(count), "-i", str(interval),
         "-W", str(wait), "10.0.0.2"],
        capture_output=True, text=True, check=False, timeout=60,
    ).stdout  # fmt: skip
    return [float(m) for m in re.findall(r"time=([\d.]+) ms", out)]


def binomial_99(n: int, p: float) -> tuple[float, float]:
    """The normal approximation of the binomial's central 99% (n*p is in the hundreds)."""
    half = 2.576 * math.sqrt(n * p * (1 - p))
    return n * p - half, n * p + half


def test_rtt_is_twice_the_one_way_delay(rig: Rig) -> None:
    rig.el.set(LINK, "both", LinkModel(delay_ms=15))
    rtts = ping_rtts(rig.a, 60)
    assert len(rtts) >= 50
    # 15 ms each way: an echo and its reply cross the element once each
    assert 30 * 0.98 <= statistics.median(rtts) <= 30 * 1.02, rtts


def test_random_loss_within_binomial_interval(rig: Rig) -> None:
    rig.el.set(LINK, "a2b", LinkModel(loss_pct=1.0))
    sink = Sink(rig.spawn(rig.b), "eth0", duration_s=20)
    try:
        sent = generate(rig.spawn(rig.a), "eth0", 128, rate_fps=50_000, count=30_000,
                        duration_s=10)  # fmt: skip
    finally:
        got = sink.result()
    n = int(sent["sent"])
    assert n == 30_000 and sent["errors"] == 0
    c = rig.el.stats()[LINK].a2b
    # the namespace's own frames (IPv6 RS, MLD) cross too: a few beyond the generator's
    extra = c.rx - n
    assert 0 <= extra <= 20 and c.dropped_queue == c.dropped_tx == 0  # only the model drops
    lost = n - got.received
    lo, hi = binomial_99(n, 0.01)
    assert lo <= lost <= hi, f"lost {lost} of {n}, 99% interval [{lo:.0f}, {hi:.0f}]"
    assert 0 <= c.dropped_loss - lost <= extra and got.reordered == 0


def test_gilbert_elliott_mean_loss(rig: Rig) -> None:
    # p=1%, r=10%: bad a fraction 1/11 of the time, all frames lost there -> 9.09% loss
    ge = GilbertElliott(p_pct=1, r_pct=10)
    rig.el.set(LINK, "a2b", LinkModel(gilbert_elliott=ge))
    sink = Sink(rig.spawn(rig.b), "eth0", duration_s=20)
    try:
        generate(rig.spawn(rig.a), "eth0", 128, rate_fps=50_000, count=20_000, duration_s=10)
    finally:
        got = sink.result()
    loss = 1 - got.received / 20_000
    # bursts (mean length 1/r = 10) widen the spread well beyond the binomial: +-20%
    assert abs(loss * 100 - ge.mean_loss_pct()) < 0.2 * ge.mean_loss_pct(), loss


def test_rate_limited_link_carries_tcp_at_its_rate(rig: Rig) -> None:
    rate = 50.0
    rig.el.set(LINK, "both", LinkModel(delay_ms=1, rate_mbit=rate, queue_packets=200))
    server = subprocess.Popen(
        ["ip", "netns", "exec", rig.b.name, "iperf3", "-s", "-1", "-B", "10.0.0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        out = subprocess.run(
            ["ip", "netns", "exec", rig.a.name, "iperf3", "-c", "10.0.0.2", "-t", "3", "-J"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
    finally:
        server.kill()
        server.wait()
    import json

    report = json.loads(out.stdout)
    assert "error" not in report, report.get("error")
    got = report["end"]["sum_received"]["bits_per_second"] / 1e6
    # TCP payload of full frames is 1448/1514 of the line: ~95.6% of the rate is expected
    assert 0.90 * rate <= got <= 1.01 * rate, f"{got:.1f} Mbit/s through a {rate} Mbit/s link"


def test_queue_limit_drops_beyond_it(rig: Rig) -> None:
    # without a rate the limit holds frames in flight: a burst much shorter than the delay
    # finds at most queue_packets of them delivered
    rig.el.set(LINK, "a2b", LinkModel(delay_ms=200, queue_packets=100))
    sink = Sink(rig.spawn(rig.b), "eth0", duration_s=10)
    try:
        gen = generate(rig.spawn(rig.a), "eth0", 256, count=1000, duration_s=5)
    finally:
        got = sink.result()
    c = rig.el.stats()[LINK].a2b
    assert gen["sent"] == 1000 and c.rx >= 1000
    if gen["seconds"] < 0.15:  # the burst fitted in the delay: exactly the limit got through
        assert got.received == 100 and c.dropped_queue >= 900
    # with a rate: waiting frames are limited; during the burst of T seconds the link sends
    # rate*T/bits more than the queue holds
    rate, size, limit = 10e6, 1000, 50
    rig.el.set(LINK, "a2b", LinkModel(rate_mbit=rate / 1e6, queue_packets=limit))
    sink = Sink(rig.spawn(rig.b), "eth0", duration_s=10)
    try:
        gen = generate(rig.spawn(rig.a), "eth0", size, count=2000, duration_s=5)
    finally:
        got = sink.result()
    served = rate * gen["seconds"] / (size * 8)
    assert limit <= got.received <= limit + math.ceil(served) + 2, (got.received, served)
    c2 = rig.el.stats()[LINK].a2b
    assert c2.dropped_queue - c.dropped_queue >= 2000 - got.received


def test_runtime_change_applies_within_a_second(rig: Rig) -> None:
    rig.el.set(LINK, "both", LinkModel(delay_ms=5))
    ping = subprocess.Popen(
        ["ip", "netns", "exec", rig.a.name, "ping", "-n", "-D", "-i", "0.02", "-c", "120",
         "10.0.0.2"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.8)
        t_set = time.time()
        rig.el.set(LINK, "both", LinkModel(delay_ms=25))
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    replies = [
        (float(t), float(rtt))
        for t, rtt in re.findall(r"^\[([\d.]+)\].*time=([\d.]+) ms", out, re.MULTILINE)
    ]
    before = [rtt for t, rtt in replies if t < t_set]
    after = [rtt for t, rtt in replies if t > t_set + 1.0]
    assert before and after
    # 2 x 5 ms before; 2 x 25 ms from one second after the change on (+-2%, and the first
    # echo after a change may wait for the slower reply)
    assert 9.8 <= statistics.median(before[1:] or before) <= 10.2 * 1.02, before
    # every reply from then on saw the new delay (none is below 2 x 25 ms less 2%)
    assert min(after) >= 49 and 49 <= statistics.median(after) <= 51, after


def test_down_drops_everything_and_up_restores(rig: Rig) -> None:
    assert len(ping_rtts(rig.a, 5, 0.05)) == 5
    rig.el.down(LINK)
    assert ping_rtts(rig.a, 5, 0.05, wait=0.3) == []
    stats = rig.el.stats()[LINK]
    assert not stats.up and stats.a2b.dropped_down >= 5
    rig.el.up(LINK)
    assert len(ping_rtts(rig.a, 5, 0.05)) >= 4  # the first may wait for ARP again


def test_bad_commands_are_one_line_errors(rig: Rig) -> None:
    with pytest.raises(LinkdError, match=r"delay_us=abc: not a number"):
        rig.el.command(f"set {LINK} a2b delay_us=abc")
    with pytest.raises(LinkdError, match=r"no link nope"):
        rig.el.command("down nope")
    with pytest.raises(LinkdError, match=r"La already belongs to link ab"):
        rig.el.command("add x La Lb")
    with pytest.raises(ConfigError, match=r"link model: delay_ms: -1 is not a number"):
        LinkModel(delay_ms=-1)
    with pytest.raises(ConfigError, match=r"jitter_dist: 'pareto'"):
        LinkModel(jitter_dist="pareto")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"loss_pct: 1 set with gilbert_elliott"):
        LinkModel(loss_pct=1, gilbert_elliott=GilbertElliott(1, 10))


def test_netem_arguments_render_the_model() -> None:
    """What the netem element asks of tc, worked by hand: 15 ms delay, 2 ms normal jitter,
    Gilbert-Elliott 1%/10%, 100 Mbit/s with a 64-frame buffer on a 1,500-byte MTU: netem's limit
    counts frames in flight too, 100e6 * 0.015 / 8 / 1514 = 123.8 -> 124 full-size frames in
    flight + 64 buffered = 188. Without a rate nothing waits: no tail drop (the cap)."""
    from pyctl.net.netem import NETEM_MAX_LIMIT, netem_args

    model = LinkModel(
        delay_ms=15,
        jitter_ms=2,
        jitter_dist="normal",
        gilbert_elliott=GilbertElliott(1, 10),
        rate_mbit=100,
        queue_packets=64,
    )
    assert (
        netem_args(model, 1500)
        == (
            "delay 15000us 2000us distribution normal loss gemodel 1% 10% 100.0% 0.0%"
            " rate 100000000bit limit 188"
        ).split()
    )
    plain = LinkModel(delay_ms=1, loss_pct=0.5, queue_packets=None)
    assert netem_args(plain, 9000) == (
        f"delay 1000us loss random 0.5% limit {NETEM_MAX_LIMIT}".split()
    )
