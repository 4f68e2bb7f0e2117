"""The live view's state: one JSON document of what the running network is doing now.

Built from a running `Scenario` (read only): the topology (sites, switches by data plane, hosts,
links), each link's element counters turned into rates between two samples (utilisation = bits
the element carried per second / the link's `bw_mbit`) beside its configured and measured delay
and loss (`link_rows`), each flow's traced path and per-hop delay from the IFIT collector, the
results of the phases done so far, the eBPF switches' counters, the scheduler's decisions and
the run's log.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import logging
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyctl.errors import ICPNError
from pyctl.model.topology import Kind
from pyctl.net.linkd import LinkStats
from pyctl.net.linkreport import link_rows
from pyctl.net.scenario import COLLECTOR_HTTP_PORT

log = logging.getLogger("pyctl.web")
HISTORY = 240  # utilisation samples kept per link (two minutes at two a second)
LOG_LINES = 200


def jsonable(value: Any) -> Any:
    """A decision or result as JSON: dataclasses as dicts, enums by value, the rest by str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def named_ifit(doc: Mapping[str, Any], plan: Any) -> list[dict[str, Any]]:
    """The collector's /flows with node ids and flow ids as topology names (as the report)."""
    names = {cfg.node_id: name for name, cfg in plan.switches.items()}
    flows_by_id = {v: k for k, v in plan.flowmon_ids.items()}
    out = []
    for fl in doc.get("flows", []):
        fid = fl.get("flowmon_id")
        out.append(
            {
                "flow": flows_by_id.get(fid, str(fid)),
                "path": [names.get(n, str(n)) for n in fl.get("path", [])],
                "path_changes": fl.get("path_changes", 0),
                "delay_us": fl.get("delay_us", {}),
                "hops": [
                    {
                        "from": names.get(h["from"], str(h["from"])),
                        "to": names.get(h["to"], str(h["to"])),
                        "delay_us": h.get("delay_us", {}),
                    }
                    for h in fl.get("hops", [])
                ],
            }
        )
    return out


def topology_doc(scenario: Any) -> dict[str, Any]:
    """What does not change while the network runs: sites, nodes (switches with their data
    plane), links with their configured model."""
    topo = scenario.topo
    nodes = []
    for n in topo.nodes:
        if n.is_router:
            plane = n.kind.value if n.kind in (Kind.EBPF, Kind.BMV2) else scenario.dataplane
            role = n.role.value if n.role is not None else "switch"
            nodes.append(
                {"name": n.name, "type": "switch", "site": n.site, "plane": plane, "role": role}
            )
        else:
            nodes.append({"name": n.name, "type": n.kind.value, "site": n.site})
    return {
        "name": topo.name,
        "description": topo.description,
        "dataplane": scenario.dataplane,
        "why": scenario.why,
        "sites": [{"name": s.name, "gpus": s.gpus} for s in topo.sites],
        "nodes": nodes,
        "flows": [{"name": f.name, "src": f.src, "dst": f.dst} for f in topo.flows],
    }


class LiveState:
    """Samples a running scenario; `sample()` is called from one thread (the sampler)."""

    def __init__(self, scenario: Any) -> None:
        self.scenario = scenario
        self.static = topology_doc(scenario)
        self.log: list[str] = []
        self.phase = "starting"
        self.t0 = time.monotonic()
        self._last: tuple[float, dict[str, LinkStats]] | None = None
        self.history: dict[str, list[tuple[float, float | None]]] = {}
        self.peak: dict[str, float] = {}
        self.peak_mbit: dict[str, tuple[float, float]] = {}  # per direction
        self.ifit: list[dict[str, Any]] = []
        self._frames: dict[str, int] | None = None  # each flow's backbone frame (framesize)
        self.switches: dict[str, Any] = {}
        self.status = "running"
        self._prev: dict[str, Any] | None = None

    def note(self, line: str) -> None:
        """A line of the run's log (the phase it names becomes the current phase)."""
        self.log = [*self.log[-LOG_LINES + 1 :], line]
        words = line.split()
        if len(words) >= 2 and words[0] == "phase":
            self.phase = words[1].rstrip(":")

    def _collector(self) -> list[dict[str, Any]]:
        sc = self.scenario
        col = next((n.name for n in sc.topo.nodes if n.kind is Kind.COLLECTOR), None)
        col = getattr(sc, "collector_node", col)  # an experiment says whether it started one
        if col is None or sc.emu is None:
            return []

        def fetch() -> dict[str, Any]:
            url = f"http://127.0.0.1:{COLLECTOR_HTTP_PORT}/flows"
            with urllib.request.urlopen(url, timeout=1) as resp:
                doc: dict[str, Any] = json.loads(resp.read())
                return doc

        return named_ifit(sc.emu.run_in(col, fetch), sc.plan)

    def _rates(self, stats: dict[str, LinkStats], now: float) -> dict[str, dict[str, Any]]:
        """Each link's Mbit/s per direction since the last sample, and its utilisation."""
        out: dict[str, dict[str, Any]] = {}
        bw = {f"{lk.a}-{lk.b}": lk.bw_mbit for lk in self.scenario.topo.links}
        last_t, last = self._last if self._last else (now, {})
        dt = now - last_t
        for name, st in stats.items():
            prev = last.get(name)
            if prev is None or dt <= 0:
                a2b = b2a = 0.0
            else:
                a2b = (st.a2b.tx_bytes - prev.a2b.tx_bytes) * 8 / dt / 1e6
                b2a = (st.b2a.tx_bytes - prev.b2a.tx_bytes) * 8 / dt / 1e6
            cap = bw.get(name)
            util = max(a2b, b2a) / cap if cap else None
            if util is not None:
                self.peak[name] = max(self.peak.get(name, 0.0), util)
            was = self.peak_mbit.get(name, (0.0, 0.0))
            self.peak_mbit[name] = (max(was[0], a2b), max(was[1], b2a))
            hist = self.history.setdefault(name, [])
            hist.append((round(now - self.t0, 2), util if util is not None else max(a2b, b2a)))
            del hist[:-HISTORY]
            out[name] = {
                "up": st.up,
                "mbit_a2b": a2b,
                "mbit_b2a": b2a,
                "utilisation": util,
                "peak_utilisation": self.peak.get(name),
                "peak_mbit": self.peak_mbit.get(name),
                "history": hist,
            }
        self._last = (now, stats)
        return out

    def _idle(self, name: str) -> dict[str, Any]:
        return {
            "history": self.history.get(name, []),
            "peak_utilisation": self.peak.get(name),
            "peak_mbit": self.peak_mbit.get(name),
        }

    def sample(self) -> dict[str, Any]:
        """The state now (the network's counters are read; safe while the run goes on)."""
        sc = self.scenario
        now = time.monotonic()
        stats: dict[str, LinkStats] = {}
        if sc.emu is not None and self.status == "running":
            try:
                stats = sc.emu.link_stats()
            except ICPNError as e:
                log.debug("live view: link stats: %s", e)
                if self._prev is not None:  # the network went down: its last state stands
                    return self._prev
            try:
                self.ifit = self._collector()
            except (OSError, ICPNError, ValueError):
                pass  # no answer yet: keep the last paths
            try:
                self.switches = sc._switch_counts()
            except (ICPNError, OSError, KeyError):
                pass
        rates = self._rates(stats, now) if stats else {}
        element = sc.emu.element_name if sc.emu is not None else "icpn_linkd"
        links = []
        if self._frames is None:
            self._frames = sc.frame_bytes()
        for row in link_rows(list(sc.topo.links), stats, self.ifit, element, self._frames):
            lk = next(lk for lk in sc.topo.links if f"{lk.a}-{lk.b}" == row["link"])
            row.update({"a": lk.a, "b": lk.b})
            row.update(rates.get(row["link"], self._idle(row["link"])))
            links.append(row)
        self._prev = {
            **self.static,
            "status": self.status,
            "phase": self.phase,
            "live": {"phase": self.phase, "flows": self._live_flows()},
            "elapsed_s": round(now - self.t0, 2),
            "links": links,
            "ifit": self.ifit,
            "phases": [phase_doc(p) for p in list(getattr(sc, "phases", []))],
            "switches": self.switches,
            "decisions": jsonable(list(getattr(sc, "decisions", []))[-100:]),
            "log": self.log[-60:],
        }
        return self._prev

    def _live_flows(self) -> list[dict[str, Any]]:
        """The running phase's flows so far: received rate, CE marks, CNPs, PFC pauses (read
        from the flows' statistics files, which their processes rewrite twice a second)."""
        sc = self.scenario
        read = getattr(sc, "live_flows", None)
        done = {getattr(p, "name", None) for p in list(getattr(sc, "phases", []))}
        if self.status != "running" or not callable(read) or self.phase in done:
            return []
        try:
            flows = read(self.phase)
        except (OSError, ICPNError, KeyError, ValueError) as e:
            log.debug("live view: flows: %s", e)
            return []
        return [jsonable(f) for f in flows if f.sent_mbit or f.received_mbit]


def phase_doc(phase: Any) -> dict[str, Any]:
    doc: dict[str, Any] = jsonable(phase)
    doc.pop("paths", None)  # per-path samples: in report.json and the plots
    doc["mean_utilisation"] = (
        phase.mean_utilisation() if hasattr(phase, "mean_utilisation") else None
    )
    return doc


def final_state(
    live: Mapping[str, Any], report: Mapping[str, Any], run_dir: Path
) -> dict[str, Any]:
    """The last live state completed by the run's report: its measured links and telemetry,
    every phase, and the PNG plots as data: URIs (report.html is then one file)."""
    state = dict(live)
    state["status"] = "finished"
    state["phase"] = "done"
    measured = {row["link"]: row for row in report.get("links", [])}
    links = []
    for row in live.get("links", []):
        done = measured.get(row["link"])
        links.append({**row, **({"measured": done["measured"]} if done else {})})
    state["links"] = links
    if report.get("ifit"):
        state["ifit"] = report["ifit"]
    state["phases"] = [
        {
            **{k: v for k, v in p.items() if k != "paths"},
            "mean_utilisation": report.get("mean_utilisation", {}).get(p["name"]),
        }
        for p in report.get("phases", [])
        if isinstance(p, dict) and "name" in p
    ]
    state["plots"] = plots(run_dir)
    return state


def plots(run_dir: Path) -> dict[str, str]:
    out = {}
    for png in sorted(run_dir.glob("*.png")):
        out[png.name] = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    return out


def embed(page: str, state: Mapping[str, Any]) -> str:
    """The page with `state` in it (</script> in a string cannot end the script element)."""
    doc = json.dumps(state).replace("</", "<\\/")
    marker = "/*ICPN_FROZEN_STATE*/null"
    if marker not in page:
        raise ICPNError("live.html: the frozen-state marker is missing")
    return page.replace(marker, doc, 1)
