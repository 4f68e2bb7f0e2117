"""netem as the link element, where the kernel has it (`--link-element netem`).

The same place in the network as `icpn_linkd` (pyctl.net.linkd): the run's links namespace holds
L_a and L_b for each link. Frames arriving on L_a are redirected (tc mirred, at ingress) to leave
L_b, whose root qdisc is netem with the a->b model, and the other way round. A frame an eBPF node
XDP_REDIRECTs into its port arrives at L_a as a normal skb (generic XDP), so it passes the ingress
hook and netem like any other.

What netem cannot do the same way (docs/topology.md): its `limit` counts every frame it holds,
in flight as well as waiting for the rate, so the link's buffer is given as frames in flight at
the line rate (full-size frames over the delay) plus the buffer's full-size frames; and jitter
reorders unless a rate is set. The element says which it is in the report ("netem").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from pyctl import constants as C
from pyctl.errors import ICPNError
from pyctl.model.link import Direction, LinkModel
from pyctl.net.linkd import Counters, LinkStats

NETEM_MAX_LIMIT = 1_000_000


class NetemError(ICPNError):
    """A tc command of the netem element failed; the message names it."""


def netem_args(model: LinkModel, mtu: int) -> list[str]:
    """`tc qdisc ... netem` arguments for one direction's model (every key, nothing stale)."""
    args = ["delay", f"{model.delay_ms * 1000:.0f}us"]
    if model.jitter_ms:
        args += [f"{model.jitter_ms * 1000:.0f}us"]
        if model.jitter_dist != "uniform":
            args += ["distribution", model.jitter_dist]
    ge = model.gilbert_elliott
    if ge is not None:
        args += ["loss", "gemodel"]
        args += [f"{v}%" for v in (ge.p_pct, ge.r_pct, ge.loss_bad_pct, ge.loss_good_pct)]
    elif model.loss_pct:
        args += ["loss", "random", f"{model.loss_pct}%"]
    frame = mtu + C.ETH_HLEN
    if model.rate_mbit:
        args += ["rate", f"{model.rate_mbit * 1e6:.0f}bit"]
        buffered = math.ceil((model.queue_bytes or frame * (model.queue_packets or 1000)) / frame)
        in_flight = math.ceil(model.rate_mbit * 1e6 * model.delay_ms / 1000 / 8 / frame)
        limit = buffered + in_flight
    else:
        limit = NETEM_MAX_LIMIT  # nothing waits: frames in flight only, never a tail drop
    return args + ["limit", str(min(limit, NETEM_MAX_LIMIT))]


class NetemElement:
    """Links through netem in the links namespace; `sh(cmd)` runs a shell command there and
    returns (exit status, output)."""

    name = "netem"

    def __init__(self, sh: Callable[[str], tuple[int, str]]) -> None:
        self.sh = sh
        self.links: dict[str, tuple[str, str, int]] = {}  # id -> (L_a, L_b, mtu)

    @property
    def pid(self) -> None:
        return None  # no process of its own: the namespace's qdiscs go with it

    def _run(self, cmd: str) -> str:
        rc, out = self.sh(cmd)
        if rc != 0:
            raise NetemError(f"netem element: `{cmd}` failed: {out.strip()}")
        return out

    def add(
        self,
        link_id: str,
        if_a: str,
        if_b: str,
        a2b: LinkModel | None = None,
        b2a: LinkModel | None = None,
        mtu: int = 1500,
    ) -> None:
        self.links[link_id] = (if_a, if_b, mtu)
        for src, dst in ((if_a, if_b), (if_b, if_a)):
            self._run(f"ethtool -K {src} gro off gso off tso off >/dev/null 2>&1; true")
            self._run(f"ip link set {src} up")
            self._run(f"tc qdisc replace dev {src} clsact")
            self._run(
                f"tc filter replace dev {src} ingress protocol all pref 1 u32 match u32 0 0"
                f" action mirred egress redirect dev {dst}"
            )
        self.set(link_id, "a2b", a2b or LinkModel())
        self.set(link_id, "b2a", b2a or a2b or LinkModel())

    def set(self, link_id: str, direction: Direction, model: LinkModel) -> None:
        if_a, if_b, mtu = self.links[link_id]
        targets = {"a2b": [if_b], "b2a": [if_a], "both": [if_b, if_a]}[direction]
        for dev in targets:  # a->b frames leave through L_b
            self._run(f"tc qdisc replace dev {dev} root netem {' '.join(netem_args(model, mtu))}")

    def down(self, link_id: str) -> None:
        for dev in self.links[link_id][:2]:
            self._run(f"ip link set {dev} down")

    def up(self, link_id: str) -> None:
        for dev in self.links[link_id][:2]:
            self._run(f"ip link set {dev} up")

    def _counters(self, rx_dev: str, tx_dev: str) -> Counters:
        link = json.loads(self._run(f"ip -s -j link show dev {rx_dev}"))[0]["stats64"]["rx"]
        (qdisc,) = [
            q
            for q in json.loads(self._run(f"tc -s -j qdisc show dev {tx_dev} root"))
            if q.get("kind") == "netem"
        ]
        return Counters(
            rx=int(link["packets"]),
            rx_bytes=int(link["bytes"]),
            tx=int(qdisc.get("packets", 0)),
            tx_bytes=int(qdisc.get("bytes", 0)),
            dropped_loss=int(qdisc.get("drops", 0)),  # netem counts loss and limit drops as one
            dropped_queue=0,
            dropped_down=0,
            dropped_tx=0,
            in_flight=int(qdisc.get("qlen", 0)),
        )

    def stats(self) -> dict[str, LinkStats]:
        out = {}
        for link_id, (if_a, if_b, _) in self.links.items():
            up = "UP" in self._run(f"ip -br link show dev {if_a}")
            out[link_id] = LinkStats(up, self._counters(if_a, if_b), self._counters(if_b, if_a))
        return out

    def stop(self) -> None:
        self.links.clear()  # the qdiscs and filters go with the links namespace
