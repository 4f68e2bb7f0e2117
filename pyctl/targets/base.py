"""What every data plane offers: configure it from a `NodeConfig`, push one frame, get outputs."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from pyctl.model.node import NodeConfig, PacketContext

# The features a conformance vector may cover; a data plane's optional `supports(covers)`
# answers for these (None = supported, else the reason).
FEATURES: tuple[str, ...] = (
    "End",
    "End.X",
    "End.DT4",
    "End.DT6",
    "End.DT46",
    "End.DX4",
    "End.DX6",
    "PSP",
    "NEXT-CSID",
    "H.Encaps",
    "H.Encaps.Red",
    "SRH-validation",
    "APN",
    "deep-hash",
    "elephant",
    "IFIT-head",
    "IFIT-transit",
    "IFIT-tail",
    "ECN",
    "PFC",
    "forwarding",
)


@dataclass(frozen=True)
class Output:
    port: int
    frame: bytes


@dataclass
class Result:
    """What one frame turned into.

    `drop` is the reason when the frame itself went nowhere (docs/pipeline.md names the reasons);
    `outputs` may still hold frames the node emitted because of it (a PFC pause, an IFIT report).
    """

    outputs: list[Output] = field(default_factory=list)
    drop: str | None = None

    @property
    def dropped(self) -> bool:
        return self.drop is not None


class DataPlane(abc.ABC):
    """One data plane running one node. Stateful: elephants, IFIT counters and PFC persist."""

    name: str = "?"

    @classmethod
    def unavailable(cls) -> str | None:
        """None when this data plane can run here, else a one-line reason."""
        return None

    @abc.abstractmethod
    def configure(self, node: NodeConfig) -> None:
        """Program the node (replacing any previous configuration and state)."""

    @abc.abstractmethod
    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        """Push one Ethernet frame arriving on `ctx.in_port` through the node."""

    def close(self) -> None:  # noqa: B027 (optional hook: most planes hold nothing)
        """Release what the data plane holds (processes, maps, interfaces)."""

    def __enter__(self) -> DataPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
