"""What makes a switch node of an emulated network forward: a data plane started on the node's
interfaces (the eBPF program attached to them, BMv2 on them, a software switch reading them).

The emulation (pyctl.net) builds nodes and links and hands each switch node to a runner; the
controller re-pushes a configuration through `apply`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pyctl.model.node import NodeConfig


class SwitchRunner(Protocol):
    """Makes one switch node forward: started once its interfaces exist."""

    def start(self, node: Any, cfg: NodeConfig, ifnames: dict[int, str], run_dir: Path) -> None: ...

    def apply(self, cfg: NodeConfig) -> None: ...

    def stop(self) -> None: ...
