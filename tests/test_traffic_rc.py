"""The RC transport of the traffic generator (pyctl.net.traffic): a windowed sender and an
in-order receiver between two namespaces, through the link element with delay and loss. The
expected values come from the window, the configured delay and the message sizes.

Layout: namespace a (eth0 10.0.0.1) <-veth-> La [links ns: icpn_linkd] Lb <-veth-> namespace b
(eth0 10.0.0.2); names carry this process's PID, so concurrent runs do not collide.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from link_rig import LINK, link_rig

from pyctl import netns
from pyctl.model.link import LinkModel
from pyctl.net import traffic
from pyctl.net.linkd import LinkElement, spawn_in_netns

pytestmark = pytest.mark.root

PREFIX = "icpnt-rc"
SIZE = 4096  # UDP payload a packet, BTH included


def test_psn_unwraps_near_the_reference() -> None:
    mod = traffic.PSN_MOD
    assert traffic.unwrap(5, 3) == 5
    assert traffic.unwrap(2, mod + 10) == mod + 2  # a late ACK of the same lap
    assert traffic.unwrap(mod - 1, mod + 1) == mod - 1  # just before the wrap
    assert traffic.unwrap(1, mod - 2) == mod + 1  # just after it
    frame = traffic.ack(0x101, mod + 7, nak=True)
    op, _, _, qp, psn = traffic.BTH.unpack_from(frame)
    (aeth,) = traffic.AETH.unpack_from(frame, traffic.BTH.size)
    assert (op, qp, psn, aeth >> 24) == (traffic.OPCODE_ACK, 0x101, 7, traffic.SYNDROME_NAK_PSN)


@pytest.fixture
def pair() -> Iterator[tuple[netns.Netns, netns.Netns, LinkElement]]:
    with link_rig(PREFIX) as rig:
        yield rig.a, rig.b, rig.el


def _run(a: netns.Netns, b: netns.Netns, tmp: Path, send: list[str], secs: float) -> tuple[
    dict[str, object], dict[str, object]
]:  # fmt: skip
    rx_stats, tx_stats = tmp / "rx.json", tmp / "tx.json"
    py = [sys.executable, "-m", "pyctl.net.traffic"]
    rx = spawn_in_netns(b.name)(
        [*py, "recv", "--duration", str(secs + 1.5), "--stats", str(rx_stats)]
    )
    try:
        subprocess.run(["sleep", "0.3"], check=True)
        argv = [*py, "send", "--dst", "10.0.0.2", "--qp", "0x101", "--size", str(SIZE)]
        argv += ["--duration", str(secs), "--stats", str(tx_stats), *send]
        tx = spawn_in_netns(a.name)(argv)
        assert tx.wait(secs + 10) == 0
    finally:
        rx.wait(secs + 10)
    (flow,) = json.loads(rx_stats.read_text()).values()
    return json.loads(tx_stats.read_text()), flow


def test_a_window_caps_the_flow_at_window_per_round_trip(
    pair: tuple[netns.Netns, netns.Netns, LinkElement], tmp_path: Path
) -> None:
    a, b, el = pair
    el.set(LINK, "both", LinkModel(delay_ms=15))
    window = 30_000  # 7 packets of 4096 bytes fit: at most 28,672 bytes per 30 ms round trip
    # a resend timeout far above the 30 ms round trip: on a loaded VM a late ACK must not
    # look like a loss (this test is about the window, not about recovery)
    send = ["--rate-mbit", "100", "--window-bytes", str(window), "--rto-ms", "3000"]
    tx, rx = _run(a, b, tmp_path, send, 2.0)
    cap = (window // SIZE) * SIZE * 8 / 0.030 / 1e6  # 7.65 Mbit/s, far below the 100 offered
    got = float(rx["bytes"]) * 8 / (float(rx["last"]) - float(rx["first"])) / 1e6  # type: ignore[arg-type]
    assert got <= cap * 1.05
    assert got >= cap * 0.6  # the hosts add to the 30 ms; a loaded VM adds milliseconds
    assert tx["retransmits"] == 0 and rx["out_of_order"] == 0


def test_go_back_n_delivers_every_message_once_and_in_order_under_loss(
    pair: tuple[netns.Netns, netns.Netns, LinkElement], tmp_path: Path
) -> None:
    a, b, el = pair
    el.set(LINK, "both", LinkModel(delay_ms=5, loss_pct=5))  # data and ACKs alike
    messages, size = 10, 100_000  # 25 packets each: 250 packets, ~12 lost at 5%
    send = ["--rate-mbit", "50", "--window-bytes", "50000", "--rto-ms", "100"]
    send += ["--fetch-bytes", str(size), "--fetches", str(messages)]
    tx, rx = _run(a, b, tmp_path, send, 8.0)
    fetches = tx["fetch_s"]
    assert isinstance(fetches, list) and len(fetches) == messages
    # every packet of every message taken exactly once, in PSN order (the receiver counts only
    # the expected PSN): messages x ceil(size / 4096) packets of 4096 bytes
    per = -(-size // SIZE)
    assert rx["packets"] == messages * per and rx["bytes"] == messages * per * SIZE
    # the element's seeded draws lose data packets (0.95^250 < 1e-5 to lose none): resent
    assert int(tx["retransmits"]) > 0  # type: ignore[call-overload]
    assert int(tx["naks"]) + int(tx["timeouts"]) > 0  # type: ignore[call-overload]
    assert min(fetches) >= 0.010  # a message waits at least one 10 ms round trip
