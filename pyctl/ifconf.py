"""Interface settings made in-process, in the calling thread's network namespace: what `ethtool
-K`, `ip link set` and `sysctl -w` would do, without a process each.

A network of 1,000 nodes has thousands of interfaces; a subprocess per setting (5-10 ms on a busy
2-core VM) made bring-up grow with them (docs/scaling.md). Offloads go through the
ETHTOOL_SFEATURES ioctl by the kernel's feature names, grouped as `ethtool -K` groups them;
links through one pyroute2 socket per call; sysctls through /proc/sys/net, which is the writing
thread's namespace's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.ethtool.ioctl import IoctlEthtool, NotSupportedError
from pyroute2.netlink.exceptions import NetlinkError

from pyctl.errors import ICPNError

# `ethtool -K` offload names and the kernel features each turns (ETH_SS_FEATURES names)
_GROUPS: dict[str, Callable[[str], bool]] = {
    "tx": lambda f: f.startswith("tx-checksum-"),
    "tso": lambda f: f.startswith("tx-tcp") and f.endswith("-segmentation"),
    "gso": lambda f: f == "tx-generic-segmentation",
    "gro": lambda f: f == "rx-gro",
}


def set_offloads(ifname: str, off: Iterable[str]) -> None:
    """Turn offloads off on an interface as `ethtool -K IF tx off tso off ...` does, through
    the ETHTOOL_SFEATURES ioctl: every kernel feature of each named group that the driver lets
    change (a fixed one stays as it is, as ethtool leaves it)."""
    groups = [_GROUPS[name] for name in off]
    eth = IoctlEthtool(ifname)
    try:
        features = eth.get_features()
        for name in features.keys():
            if any(g(name) for g in groups) and features.is_available(name):
                features[name] = False
        eth.set_features(features)
    except (OSError, NotSupportedError) as e:
        raise ICPNError(f"{ifname}: turning {', '.join(off)} off failed: {e}") from None
    finally:
        eth.close()


def sysctl(name: str, value: str) -> None:
    """`sysctl -w name=value` for a net.* key, in this thread's namespace."""
    path = Path("/proc/sys") / name.replace(".", "/")
    try:
        path.write_text(f"{value}\n")
    except OSError as e:
        raise ICPNError(f"sysctl {name}={value}: {e.strerror}") from None


def set_links(settings: Mapping[str, Mapping[str, object]], ipr: IPRoute | None = None) -> None:
    """`ip link set` for many interfaces over one netlink socket: ifname -> attributes
    (mtu=, state="up", address=...)."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        for ifname, attrs in settings.items():
            try:
                ipr.link("set", ifname=ifname, **attrs)
            except NetlinkError as e:
                raise ICPNError(f"{ifname}: setting {attrs} failed: {e.args[-1]}") from None
    finally:
        if own:
            ipr.close()
