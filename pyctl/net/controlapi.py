"""The running network's side of a stand-alone scheduler (`pyctl.sched.remote`).

Served by `icpn run --sched-port` beside the run's own scheduler API:

    GET  /network  {"sites": [...], "paths": [...]}: the scheduler configuration of this
                   network (each SID list of each policy a path, as the closed loop has them)
    POST /steer    {"job": "video", "path": "to-dc/pb"} -> 200 {"ok": true, "headend", "took_s"}
                   the controller pins the topology's flow to the path and re-pushes the headend

A flow or path the network does not have is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyctl.controller.steer import PlanSteerer
from pyctl.errors import ConfigError
from pyctl.sched.model import Job, Path, Site
from pyctl.telemetry.httpd import Response, json_body, json_ok


def controller_routes(
    steerer: PlanSteerer, sites: Sequence[Site], paths: Sequence[Path]
) -> dict[tuple[str, str], Callable[[bytes], Response]]:
    by_name = {p.name: p for p in paths}

    def network(_body: bytes) -> Response:
        return json_ok(
            {
                "sites": [{"name": s.name, "gpus": s.gpus} for s in sites],
                "paths": [p.as_config() for p in paths],
            }
        )

    def steer(body: bytes) -> Response:
        doc = json_body(body, "steer")
        if not isinstance(doc, dict):
            raise ConfigError("steer", f"expected {{job, path}}, got {doc!r}")
        job, name = doc.get("job"), doc.get("path")
        if not isinstance(job, str):
            raise ConfigError("steer.job", f"expected a flow name, got {job!r}")
        path = by_name.get(name) if isinstance(name, str) else None
        if path is None:
            raise ConfigError("steer.path", f"{name!r} is not a path of this network")
        with steerer.lock:  # re-entrant: the push just made is this request's
            steerer.steer(Job(job, path.headend), path)
            push = steerer.pushes[-1]
        return json_ok({"ok": True, "headend": path.headend, "took_s": push["took_s"]})

    return {("GET", "/network"): network, ("POST", "/steer"): steer}
