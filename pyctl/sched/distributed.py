"""Distributed mode: every headend decides alone, and a comparison with the centralised mode.

Each headend runs its own `Scheduler` ("agent") over its own paths only: it sees the telemetry
of its own paths (local), and the sites' compute load as gossiped every `refresh_s` seconds
(stale in between), and it does not see what the other headends placed. Decisions need no
central controller (no round trip, no single point of failure) but can be worse: a headend
keeps sending jobs to a site that became loaded since its last refresh, and two headends can
both count the same free GPUs. `compare_modes` runs one scenario through both modes and counts
the difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pyctl.errors import ConfigError
from pyctl.sched.model import (
    KIND_PLACE,
    KIND_REJECT,
    SLA,
    Decision,
    Job,
    LoadReport,
    Path,
    PathState,
    Site,
)
from pyctl.sched.scheduler import DecisionLog, Scheduler, Steerer, Weights


class DistributedScheduler:
    """One `Scheduler` per headend; same methods as `Scheduler` (place, report_load, ...)."""

    def __init__(
        self,
        sites: Iterable[Site],
        paths: Iterable[Path],
        *,
        refresh_s: float = 5.0,
        steerer: Steerer | None = None,
        decision_log: DecisionLog | None = None,
        weights: Weights | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not refresh_s >= 0:
            raise ConfigError("refresh_s", f"{refresh_s!r} is not >= 0")
        sites = list(sites)
        paths = list(paths)
        self.refresh_s = refresh_s
        self.clock = clock
        self.log = decision_log if decision_log is not None else DecisionLog()
        self.site_names = {s.name for s in sites}
        self.agents: dict[str, Scheduler] = {}
        for headend in sorted({p.headend for p in paths}):
            self.agents[headend] = Scheduler(
                sites,
                [p for p in paths if p.headend == headend],
                steerer=steerer,
                decision_log=self.log,
                weights=weights,
                clock=clock,
                name=f"headend:{headend}",
            )
        self.paths = {p.name: p for p in paths}
        self._latest: dict[str, LoadReport] = {}
        self._refreshed: dict[str, float] = dict.fromkeys(self.agents, -math.inf)

    def report_load(
        self, report: LoadReport | Mapping[str, Any], now: float | None = None
    ) -> LoadReport:
        """A site's report; the headends learn it at their next refresh."""
        if not isinstance(report, LoadReport):
            report = LoadReport.from_dict(report)
        if report.site not in self.site_names:
            known = ", ".join(sorted(self.site_names))
            raise ConfigError("load.site", f"unknown site {report.site!r} (known: {known})")
        if report.time is None:
            report = replace(report, time=self.clock() if now is None else now)
        self._latest[report.site] = report
        return report

    def refresh(self, now: float | None = None) -> list[str]:
        """Gossip round: headends whose view is `refresh_s` old take the latest reports."""
        now = self.clock() if now is None else now
        done = []
        for headend, agent in self.agents.items():
            if now - self._refreshed[headend] >= self.refresh_s:
                for report in self._latest.values():
                    known = agent.sites[report.site].updated
                    # only news: re-applying a report would forget the agent's own placements
                    if known is None or (report.time is not None and report.time > known):
                        agent.report_load(report, now)
                self._refreshed[headend] = now
                done.append(headend)
        return done

    def place(self, job: Job | Mapping[str, Any], now: float | None = None) -> Decision:
        if not isinstance(job, Job):
            job = Job.from_dict(job)
        now = self.clock() if now is None else now
        agent = self.agents.get(job.headend)
        if agent is None:
            decision = Decision(
                time=now,
                kind=KIND_REJECT,
                job=job.name,
                site=None,
                path=None,
                reason=f"no headend {job.headend!r} (known: {', '.join(self.agents)})",
                decided_by="distributed",
            )
            self.log.record(decision)
            return decision
        self.refresh(now)
        return agent.place(job, now)

    def release(self, job_name: str) -> None:
        for agent in self.agents.values():
            if job_name in agent.placements:
                agent.release(job_name)
                return
        raise ConfigError("job.name", f"{job_name!r} is not placed")

    def on_telemetry(
        self, updates: PathState | Iterable[PathState], now: float | None = None
    ) -> list[Decision]:
        """Each headend gets the telemetry of its own paths only."""
        if isinstance(updates, PathState):
            updates = [updates]
        per_agent: dict[str, list[PathState]] = {}
        for update in updates:
            path = self.paths.get(update.path)
            if path is not None:
                per_agent.setdefault(path.headend, []).append(update)
        decisions = []
        for headend, batch in per_agent.items():
            decisions.extend(self.agents[headend].on_telemetry(batch, now))
        return decisions

    def state(self) -> dict[str, Any]:
        return {
            "decided_by": "distributed",
            "refresh_s": self.refresh_s,
            "agents": {h: a.state() for h, a in self.agents.items()},
        }


# --- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """At `time`: a site's load report, a job to place, and/or path telemetry."""

    time: float
    load: LoadReport | None = None
    job: Job | None = None
    telemetry: tuple[PathState, ...] = ()


@dataclass(frozen=True)
class Scenario:
    sites: tuple[Site, ...]
    paths: tuple[Path, ...]
    events: tuple[Event, ...]


@dataclass
class ModeResult:
    """What one mode did with a scenario, judged against the true (instant, global) state."""

    mode: str
    decisions: list[Decision] = field(default_factory=list)
    placed: int = 0
    rejected: int = 0
    queued: int = 0
    """Jobs sent where, in truth, not enough GPUs were free: they wait in the site's queue."""
    queued_gpus: int = 0
    avoidable: int = 0
    """Queued jobs for which another site the headend reaches had enough free GPUs."""
    sla_misses: int = 0
    """Jobs placed on a path whose true state at that moment broke their SLA."""
    resteers: int = 0
    per_site: dict[str, int] = field(default_factory=dict)


@dataclass
class Comparison:
    centralised: ModeResult
    distributed: ModeResult
    differing: list[tuple[str, str, str]]
    """(job, centralised site/path, distributed site/path) where the two disagreed."""

    def table(self) -> str:
        rows = [
            ("jobs placed", "placed"),
            ("jobs rejected", "rejected"),
            ("jobs queued (no free GPU in truth)", "queued"),
            ("GPUs requested while none free", "queued_gpus"),
            ("  of those jobs, avoidable (GPUs free elsewhere)", "avoidable"),
            ("placed on a path breaking the SLA", "sla_misses"),
            ("re-steers", "resteers"),
        ]
        c, d = self.centralised, self.distributed
        lines = [f"{'':48s} {'centralised':>12s} {'distributed':>12s}"]
        for label, attr in rows:
            lines.append(f"{label:48s} {getattr(c, attr):>12d} {getattr(d, attr):>12d}")
        sites = sorted(set(c.per_site) | set(d.per_site))
        for site in sites:
            lines.append(
                f"{'jobs at ' + site:48s} {c.per_site.get(site, 0):>12d} "
                f"{d.per_site.get(site, 0):>12d}"
            )
        lines.append(f"decisions that differ: {len(self.differing)}")
        for job, a, b in self.differing:
            lines.append(f"  {job}: centralised {a}, distributed {b}")
        return "\n".join(lines)


def _run(mode: str, scheduler: Scheduler | DistributedScheduler, scenario: Scenario) -> ModeResult:
    result = ModeResult(mode)
    gpus = {s.name: s.gpus for s in scenario.sites}
    free = {s.name: math.floor(s.gpus * (1 - s.gpu_util) + 1e-9) for s in scenario.sites}
    true_paths: dict[str, PathState] = {}
    for event in sorted(scenario.events, key=lambda e: e.time):
        if event.load is not None:
            scheduler.report_load(event.load, event.time)
            site = event.load.site
            if event.load.gpus is not None:
                gpus[site] = event.load.gpus
            free[site] = math.floor(gpus[site] * (1 - event.load.gpu_util) + 1e-9)
        if event.telemetry:
            for state in event.telemetry:
                true_paths[state.path] = state
            for d in scheduler.on_telemetry(event.telemetry, event.time):
                result.decisions.append(d)
                result.resteers += d.kind == "resteer"
        if event.job is not None:
            d = scheduler.place(event.job, event.time)
            result.decisions.append(d)
            if d.kind != KIND_PLACE or d.site is None or d.path is None:
                result.rejected += 1
                continue
            result.placed += 1
            result.per_site[d.site] = result.per_site.get(d.site, 0) + 1
            if free[d.site] < event.job.gpus:
                result.queued += 1
                result.queued_gpus += event.job.gpus
                reachable = {p.site for p in scenario.paths if p.headend == event.job.headend}
                if any(free[site] >= event.job.gpus for site in reachable):
                    result.avoidable += 1
            free[d.site] = max(0, free[d.site] - event.job.gpus)
            truth = true_paths.get(d.path)
            sla = event.job.sla
            if truth is not None and truth.delay_us is not None and sla.max_latency_us:
                result.sla_misses += truth.delay_us > sla.max_latency_us
    return result


def compare_modes(
    scenario: Scenario, refresh_s: float = 5.0, weights: Weights | None = None
) -> Comparison:
    """Run `scenario` through a centralised and a distributed scheduler and compare."""
    central = Scheduler(scenario.sites, scenario.paths, weights=weights, clock=lambda: 0.0)
    distributed = DistributedScheduler(
        scenario.sites, scenario.paths, refresh_s=refresh_s, weights=weights, clock=lambda: 0.0
    )
    c = _run("centralised", central, scenario)
    d = _run("distributed", distributed, scenario)
    where_c = _placed_where(c.decisions)
    where_d = _placed_where(d.decisions)
    differing = [
        (job, where_c[job], where_d.get(job, "-"))
        for job in where_c
        if where_c[job] != where_d.get(job)
    ]
    return Comparison(c, d, differing)


def _placed_where(decisions: list[Decision]) -> dict[str, str]:
    return {
        d.job: f"{d.site}/{d.path}" if d.kind == KIND_PLACE else "rejected"
        for d in decisions
        if d.kind in (KIND_PLACE, KIND_REJECT)
    }


def default_scenario(jobs: int = 16, gpus_per_job: int = 4) -> Scenario:
    """Two headends, three sites; dc1 and then dc2 fill up with outside work mid-run, and one
    path to dc1 degrades. Sites report load when it changes; jobs arrive every 0.5 s."""
    sites = (Site("dc1", 32), Site("dc2", 32), Site("dc3", 16))

    def path(name: str, headend: str, site: str, delay: int, sid: int) -> Path:
        return Path(
            name=name,
            headend=headend,
            site=site,
            segments=(f"fc00:{sid:x}::1", f"fc00:{sid:x}::100"),
            nominal_delay_us=delay,
        )

    paths = (
        path("h1-dc1-a", "h1", "dc1", 2000, 0x11),
        path("h1-dc1-b", "h1", "dc1", 4000, 0x12),
        path("h1-dc2", "h1", "dc2", 5000, 0x13),
        path("h1-dc3", "h1", "dc3", 8000, 0x14),
        path("h2-dc1", "h2", "dc1", 5000, 0x21),
        path("h2-dc2-a", "h2", "dc2", 2000, 0x22),
        path("h2-dc2-b", "h2", "dc2", 3000, 0x23),
        path("h2-dc3", "h2", "dc3", 6000, 0x24),
    )
    events: list[Event] = [
        Event(0.0, load=LoadReport("dc1", 0.1)),
        Event(0.0, load=LoadReport("dc2", 0.3)),
        Event(0.0, load=LoadReport("dc3", 0.2)),
        Event(3.0, load=LoadReport("dc1", 0.95, queued_jobs=5)),
        Event(4.0, telemetry=(PathState("h1-dc1-a", delay_us=12_000, source="scenario"),)),
        Event(5.5, load=LoadReport("dc2", 0.9, queued_jobs=3)),
    ]
    sla = SLA(max_latency_us=10_000)
    for i in range(jobs):
        headend = "h1" if i % 2 == 0 else "h2"
        job = Job(f"job{i:02d}", headend=headend, gpus=gpus_per_job, sla=sla)
        events.append(Event(0.25 + 0.5 * i, job=job))
    return Scenario(sites, paths, tuple(events))
