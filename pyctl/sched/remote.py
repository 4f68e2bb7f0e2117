"""A scheduler service that acts on a running network (`icpn sched serve --network URL`).

`icpn run --sched-port PORT` serves the network's side of this on 127.0.0.1:PORT
(`pyctl.net.controlapi`): ``GET /network`` gives its compute sites and SRv6 paths in a scheduler
configuration's form, ``POST /steer`` makes its controller pin a flow to a path (the headend is
re-pushed), and ``GET /state`` carries the path figures its IFIT collector measured. With these
the stand-alone scheduler needs no configuration file of its own, steers through the network's
controller instead of only logging, and is fed the network's telemetry every period.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from pyctl.errors import ConfigError, ICPNError
from pyctl.sched.config import SchedConfig, sched_config_from_dict
from pyctl.sched.model import Job, Path, PathState
from pyctl.sched.scheduler import Scheduler


class NetworkClient:
    """HTTP client of a running network's controller API."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("--network", f"{url!r} is not an http:// URL")
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def _call(self, method: str, path: str, doc: Any = None) -> Any:
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(f"{self.url}{path}", data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:  # the network refused: its one-line reason
            reason = e.read().decode(errors="replace").strip() or e.reason
            raise ICPNError(f"network {self.url}{path}: {reason}") from None
        except (urllib.error.URLError, OSError) as e:
            why = getattr(e, "reason", e)
            raise ICPNError(f"network {self.url}: cannot reach it ({why})") from None
        except json.JSONDecodeError:
            raise ICPNError(f"network {self.url}{path}: the answer is not JSON") from None

    def config(self) -> SchedConfig:
        """The network's sites and paths (weights: the scheduler's defaults)."""
        return sched_config_from_dict(self._call("GET", "/network"), f"{self.url}/network")

    def steer(self, job: str, path: str) -> dict[str, Any]:
        got: dict[str, Any] = self._call("POST", "/steer", {"job": job, "path": path})
        return got

    def path_states(self) -> list[PathState]:
        """What the network's collector measured on each path (paths not yet measured: none)."""
        out = []
        for p in self._call("GET", "/state").get("paths", []):
            st = p.get("state") or {}
            if any(st.get(k) is not None for k in ("delay_us", "jitter_us", "loss_ppm")):
                out.append(
                    PathState(
                        p["name"],
                        delay_us=st.get("delay_us"),
                        jitter_us=st.get("jitter_us"),
                        loss_ppm=st.get("loss_ppm"),
                        source=f"network {self.url}",
                    )
                )
        return out


class NetworkSteerer:
    """Applies a decision through the running network's controller (a `Steerer`)."""

    def __init__(self, client: NetworkClient) -> None:
        self.client = client

    def steer(self, job: Job, path: Path) -> None:
        self.client.steer(job.name, path.name)


class TelemetryPoll:
    """Feeds the scheduler the network's measured path figures every `period_s`."""

    def __init__(self, client: NetworkClient, scheduler: Scheduler, period_s: float) -> None:
        self.client, self.scheduler, self.period_s = client, scheduler, period_s
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="network-telemetry", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                states = self.client.path_states()
            except ICPNError as e:  # the network ended or is busy: keep the last figures
                self.errors.append(str(e))
                continue
            if states:
                self.scheduler.on_telemetry(states)

    def start(self) -> TelemetryPoll:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.period_s + 1)
