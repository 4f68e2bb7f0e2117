"""The controller: owns every switch's intended configuration and keeps the network at it.

It pushes configurations through the switch runners (eBPF maps, a software switch's process,
P4Runtime for BMv2), changes intents at run time (`set_intent`), and re-pushes everything a
switch had when that switch restarted or died (`reconcile`, or the `watch` thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyctl.model.node import NodeConfig
from pyctl.targets.runner import SwitchRunner


@dataclass
class Controller:
    intended: dict[str, NodeConfig]
    runners: Mapping[str, SwitchRunner]
    log: Callable[[str], None] = print
    restarts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_intent(self, switch: str, cfg: NodeConfig) -> None:
        """Change what a switch should do and push it now."""
        with self._lock:
            self.intended[switch] = cfg
            self.runners[switch].apply(cfg)

    def reconcile(self) -> list[str]:
        """Re-push the intended configuration to every switch that is not running it any more;
        the names of the switches restored."""
        restored = []
        with self._lock:
            for name, runner in self.runners.items():
                alive = getattr(runner, "alive", None)
                if alive is None or alive():
                    continue
                self.log(f"controller: switch {name} is down; restoring its configuration")
                runner.apply(self.intended[name])
                self.restarts[name] = self.restarts.get(name, 0) + 1
                restored.append(name)
        return restored

    def watch(self, interval_s: float = 0.5) -> Callable[[], None]:
        """Reconcile every `interval_s` on a thread; returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                self.reconcile()

        thread = threading.Thread(target=loop, name="controller-watch", daemon=True)
        thread.start()

        def stopper() -> None:
            stop.set()
            thread.join()

        return stopper
