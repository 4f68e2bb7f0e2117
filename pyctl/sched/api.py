"""The scheduler's small HTTP API (JSON, localhost by default; docs/scheduler.md).

    POST /load       {"site": "dc1", "gpu_util": 0.42, "queued_jobs": 3, "gpus": 64, "time": ...}
                     -> 200 {"ok": true, "site": "dc1"}        (a compute site reports its load)
    POST /place      {"name": "job7", "headend": "h1", "gpus": 4, "site": null,
                      "sla": {"max_latency_us": 5000, "max_loss_ppm": 100, ...}}
                     -> 200 the decision {"kind": "place", "site", "path", "reason", ...}
    POST /release    {"name": "job7"} -> 200 {"ok": true}
    POST /telemetry  [{"path": "h1-dc1-a", "delay_us": 2100, "jitter_us": 40, "loss_ppm": 0}]
                     -> 200 the decisions it caused (path figures from elsewhere than an
                     in-process collector)
    GET  /state      sites, path states, placements
    GET  /decisions  the last 100 decisions

Bad input is a 400 whose text names the field and the value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pyctl.errors import ConfigError
from pyctl.sched.model import Decision, Job, LoadReport, PathState
from pyctl.sched.scheduler import DecisionLog
from pyctl.telemetry.httpd import LocalHTTPServer, Response, json_body, json_ok

DEFAULT_PORT = 9392


class SchedulerAPI(Protocol):
    log: DecisionLog

    def report_load(self, report: LoadReport, now: float | None = None) -> Any: ...

    def place(self, job: Job, now: float | None = None) -> Decision: ...

    def release(self, job_name: str) -> None: ...

    def on_telemetry(
        self, updates: list[PathState], now: float | None = None
    ) -> list[Decision]: ...

    def state(self) -> dict[str, Any]: ...


def _path_state(obj: Any, where: str) -> PathState:
    if not isinstance(obj, dict):
        raise ConfigError(where, f"expected an object, got {obj!r}")
    allowed = ("path", "delay_us", "jitter_us", "loss_ppm", "source")
    for key in obj:
        if key not in allowed:
            raise ConfigError(where, f"unknown field {key!r} (allowed: {', '.join(allowed)})")
    name = obj.get("path")
    if not isinstance(name, str):
        raise ConfigError(f"{where}.path", f"expected a path name, got {name!r}")
    values: dict[str, float | None] = {}
    for key in ("delay_us", "jitter_us", "loss_ppm"):
        v = obj.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise ConfigError(f"{where}.{key}", f"expected a number >= 0, got {v!r}")
        values[key] = None if v is None else float(v)
    source = obj.get("source", "http")
    return PathState(
        name, values["delay_us"], values["jitter_us"], values["loss_ppm"], None, str(source)
    )


def routes(scheduler: SchedulerAPI) -> dict[tuple[str, str], Callable[[bytes], Response]]:
    def load(body: bytes) -> Response:
        report = LoadReport.from_dict(json_body(body, "load"))
        scheduler.report_load(report)
        return json_ok({"ok": True, "site": report.site})

    def place(body: bytes) -> Response:
        return json_ok(scheduler.place(Job.from_dict(json_body(body, "job"))).as_dict())

    def release(body: bytes) -> Response:
        obj = json_body(body, "release")
        name = obj.get("name") if isinstance(obj, dict) else None
        if not isinstance(name, str):
            raise ConfigError("release.name", f"expected a job name, got {name!r}")
        scheduler.release(name)
        return json_ok({"ok": True})

    def telemetry(body: bytes) -> Response:
        obj = json_body(body, "telemetry")
        if not isinstance(obj, list):
            obj = [obj]
        updates = [_path_state(x, f"telemetry[{i}]") for i, x in enumerate(obj)]
        return json_ok([d.as_dict() for d in scheduler.on_telemetry(updates)])

    def state(_body: bytes) -> Response:
        return json_ok(scheduler.state())

    def decisions(_body: bytes) -> Response:
        return json_ok([d.as_dict() for d in scheduler.log.tail(100)])

    return {
        ("POST", "/load"): load,
        ("POST", "/place"): place,
        ("POST", "/release"): release,
        ("POST", "/telemetry"): telemetry,
        ("GET", "/state"): state,
        ("GET", "/decisions"): decisions,
    }


def load_api(
    scheduler: SchedulerAPI, bind: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> LocalHTTPServer:
    """The API server for `scheduler` (not started: call ``.start()``, later ``.stop()``)."""
    return LocalHTTPServer(routes(scheduler), bind, port)
