"""Packet experiments from the command line: pcaps through a node, dissection, summaries."""

from __future__ import annotations

from pathlib import Path

from pyctl.errors import ICPNError
from pyctl.model import PacketContext, load_node
from pyctl.targets import open_dataplane
from pyctl.targets.base import Result


def summary(frame: bytes) -> str:
    """One line: addresses, SRH state, APN-ID, IOAM hops, transport ports."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import (
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrSegmentRouting,
    )
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet

    import pyctl.packets  # noqa: F401  (registers the ICPN layers with scapy)

    pkt = Ether(frame)
    parts: list[str] = []
    layer: Packet | None = pkt.payload
    while layer is not None and layer.name not in ("Raw", "Padding", "NoPayload"):
        if isinstance(layer, IPv6):
            parts.append(f"IPv6 {layer.src} > {layer.dst} hl={layer.hlim} tc={layer.tc:#04x}")
        elif isinstance(layer, IP):
            parts.append(f"IPv4 {layer.src} > {layer.dst} ttl={layer.ttl} tos={layer.tos:#04x}")
        elif isinstance(layer, IPv6ExtHdrSegmentRouting):
            segs = ",".join(str(a) for a in layer.addresses)
            parts.append(f"SRH[SL={layer.segleft} LE={layer.lastentry} {segs}]")
        elif isinstance(layer, IPv6ExtHdrHopByHop | IPv6ExtHdrDestOpt):
            parts.append(_options_summary(layer))
        elif isinstance(layer, UDP | TCP):
            parts.append(f"{layer.name} {layer.sport}>{layer.dport}")
        elif layer.name != "Ethernet":
            parts.append(str(layer.name))
        layer = layer.payload if layer.payload.name != "NoPayload" else None
    return " / ".join(parts) + f" ({len(frame)} B)"


def _options_summary(hdr: object) -> str:
    from pyctl.packets import AltMarkOption, APNOption, IOAMTraceOption

    kind = "HBH" if type(hdr).__name__.endswith("HopByHop") else "DOH"
    items = []
    for opt in getattr(hdr, "options", []):
        if isinstance(opt, APNOption):
            items.append(f"APN={opt.apn_id:#x}")
        elif isinstance(opt, IOAMTraceOption):
            items.append(f"IOAM hops={len(opt.records())}")
        elif isinstance(opt, AltMarkOption):
            items.append(f"AltMark id={opt.flowmon_id} L={opt.L} D={opt.D}")
    return f"{kind}[{' '.join(items)}]" if items else kind


def describe(result: Result) -> str:
    if result.dropped and not result.outputs:
        return f"drop ({result.drop})"
    outs = "; ".join(f"port {o.port}: {summary(o.frame)}" for o in result.outputs)
    return (f"drop ({result.drop}), emitted " if result.dropped else "") + outs


def run_pcap(
    dataplane: str,
    node_path: Path,
    pcap_in: Path,
    pcap_out: Path | None,
    in_port: int | None,
) -> int:
    from scapy.error import Scapy_Exception
    from scapy.utils import rdpcap, wrpcap

    node = load_node(node_path)
    port = in_port if in_port is not None else node.ports[0].index
    if port not in {p.index for p in node.ports}:
        raise ICPNError(f"--in-port: {port} is not a port of node {node.name!r}")
    try:
        packets = rdpcap(str(pcap_in))
    except (OSError, Scapy_Exception) as e:
        raise ICPNError(f"{pcap_in}: cannot read pcap ({e})") from None
    out_frames: list[bytes] = []
    with open_dataplane(dataplane) as dp:
        dp.configure(node)
        t0 = float(packets[0].time) if packets else 0.0
        for i, pkt in enumerate(packets, 1):
            ctx = PacketContext(in_port=port, time_us=int((float(pkt.time) - t0) * 1e6))
            res = dp.process(bytes(pkt), ctx)
            print(f"{i:5d} {describe(res)}")
            out_frames.extend(o.frame for o in res.outputs)
    if pcap_out is not None:
        from scapy.layers.l2 import Ether

        wrpcap(str(pcap_out), [Ether(f) for f in out_frames])
        print(f"wrote {len(out_frames)} frames to {pcap_out}")
    return 0


def dissect(source: str) -> int:
    from scapy.error import Scapy_Exception
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    import pyctl.packets  # noqa: F401
    from pyctl.packets.validate import validate_packet

    path = Path(source)
    try:
        is_file = path.is_file()
    except OSError:  # a long hex string is not a valid file name
        is_file = False
    if is_file:
        try:
            frames = [bytes(p) for p in rdpcap(str(path))]
        except (OSError, Scapy_Exception) as e:
            raise ICPNError(f"{path}: cannot read pcap ({e})") from None
    else:
        try:
            frames = [bytes.fromhex(source.replace(" ", "").replace(":", ""))]
        except ValueError:
            raise ICPNError(f"{source!r} is neither a pcap file nor hex bytes") from None
    bad = 0
    for i, frame in enumerate(frames, 1):
        print(f"--- frame {i} ({len(frame)} bytes)")
        Ether(frame).show()
        problems = validate_packet(frame)
        for p in problems:
            print(f"problem: {p}")
        bad += bool(problems)
    return 1 if bad else 0
