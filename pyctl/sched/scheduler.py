"""Centralised compute-aware scheduling: pick the site and SRv6 path, re-steer on degradation.

**Scoring rule** (docs/scheduler.md). For job J entering at headend H, every path P of H (to
J's pinned site, if any) is a candidate (site S = P.site). A candidate is *infeasible* when:
S has fewer GPUs than J needs; S's load report is older than ``Weights.site_stale_s``; P's
delay (measured, else ``nominal_delay_us``) is unknown or above J's ``max_latency_us``; P's
measured loss or jitter is above J's bound; or P's free bandwidth (``capacity_kbps`` minus the
flows placed on it) is below J's ``min_bandwidth_kbps``. Feasible candidates are scored, lower
is better::

    score = network * delay / max_latency_us      (or / 10,000 µs without a bound)
          + loss    * loss_ppm / max_loss_ppm     (or / 1,000 ppm without a bound)
          + compute * (gpu_util + queued_jobs / gpus)
          + queue_penalty * (1 if S has fewer free GPUs than J needs, i.e. J would queue)

and the lowest score wins (ties: site name, then path name). Every decision carries the reason.

**Re-steering.** `on_telemetry` updates path states; a placed job whose path's *measured* delay,
loss or jitter is above its SLA for ``violations_to_resteer`` consecutive updates (default 1:
the first period that shows it) is moved to the best feasible path of the same headend to the
same site (the job keeps running where it is; only its traffic moves). With no such path the
decision is ``degraded`` (logged once per episode), and ``recovered`` when the path is back
within the SLA.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol

from pyctl.errors import ConfigError, ICPNError
from pyctl.sched.model import (
    KIND_DEGRADED,
    KIND_PLACE,
    KIND_RECOVERED,
    KIND_REJECT,
    KIND_RESTEER,
    KIND_STEER_FAILED,
    Decision,
    Job,
    LoadReport,
    Path,
    PathState,
    Site,
)

log = logging.getLogger("pyctl.sched")

REF_DELAY_US = 10_000
REF_LOSS_PPM = 1_000


class Steerer(Protocol):
    """Applies a decision in the network (the controller implements it: SRv6 policy update)."""

    def steer(self, job: Job, path: Path) -> None: ...


class RecordingSteerer:
    """Remembers every steering call (tests, dry runs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def steer(self, job: Job, path: Path) -> None:
        self.calls.append((job.name, path.name))


class LoggingSteerer:
    """Only logs what the controller would do (``icpn sched serve`` until a controller exists)."""

    def steer(self, job: Job, path: Path) -> None:
        log.info("steer %s onto %s: SID list %s", job.name, path.name, ", ".join(path.segments))


class DecisionLog:
    """Every decision, in memory (the last `keep`) and as JSON lines on `stream`."""

    def __init__(self, stream: IO[str] | None = None, keep: int = 1000) -> None:
        self.stream = stream
        self.decisions: deque[Decision] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def record(self, decision: Decision) -> None:
        with self._lock:
            self.decisions.append(decision)
            if self.stream is not None:
                try:
                    self.stream.write(json.dumps(decision.as_dict()) + "\n")
                    self.stream.flush()
                except (OSError, ValueError) as e:
                    log.warning("decision log write failed: %s", e)
        log.info("%s %s: %s", decision.kind, decision.job, decision.reason)

    def tail(self, n: int = 100) -> list[Decision]:
        with self._lock:
            return list(self.decisions)[-n:]


@dataclass(frozen=True)
class Weights:
    """Weights of the score terms, and how old a site's load report may be."""

    network: float = 1.0
    loss: float = 1.0
    compute: float = 1.0
    queue_penalty: float = 1.0
    site_stale_s: float = 30.0
    violations_to_resteer: int = 1

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any] | None, where: str = "weights") -> Weights:
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise ConfigError(where, f"expected a mapping, got {obj!r}")
        kwargs: dict[str, Any] = {}
        for key, value in obj.items():
            if key not in cls.__dataclass_fields__:
                allowed = ", ".join(cls.__dataclass_fields__)
                raise ConfigError(where, f"unknown field {key!r} (allowed: {allowed})")
            ok_int = key != "violations_to_resteer" or (isinstance(value, int) and value >= 1)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}.{key}", f"expected a number >= 0, got {value!r}")
            if not ok_int:
                raise ConfigError(f"{where}.{key}", f"expected an integer >= 1, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Candidate:
    site: str
    path: str
    feasible: bool
    score: float
    why: str
    terms: Mapping[str, float] = field(default_factory=dict)


@dataclass
class Placement:
    job: Job
    site: str
    path: str
    since: float
    violations: int = 0
    degraded: bool = False


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    return (
        f"{value:.0f} {unit}" if abs(value) >= 10 or value == int(value) else f"{value:.2f} {unit}"
    )


class Scheduler:
    """Centralised scheduler: one view of every site and every path. Thread-safe."""

    def __init__(
        self,
        sites: Iterable[Site],
        paths: Iterable[Path],
        *,
        steerer: Steerer | None = None,
        decision_log: DecisionLog | None = None,
        weights: Weights | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "centralised",
    ) -> None:
        self.sites = {s.name: replace(s) for s in sites}
        self.paths: dict[str, Path] = {}
        for p in paths:
            if p.name in self.paths:
                raise ConfigError(f"paths[{p.name}]", "duplicate path name")
            if p.site not in self.sites:
                known = ", ".join(sorted(self.sites)) or "none"
                raise ConfigError(f"paths[{p.name}].site", f"unknown site {p.site!r} ({known})")
            self.paths[p.name] = p
        self.steerer = steerer
        self.log = decision_log if decision_log is not None else DecisionLog()
        self.weights = weights or Weights()
        self.clock = clock
        self.name = name
        self.states: dict[str, PathState] = {}
        self.placements: dict[str, Placement] = {}
        self.reserved_kbps: dict[str, int] = {}
        self._lock = threading.RLock()

    # --- inputs ----------------------------------------------------------------------------

    def report_load(self, report: LoadReport | Mapping[str, Any], now: float | None = None) -> Site:
        """A site's load report (``POST /load`` lands here); returns the updated site."""
        if not isinstance(report, LoadReport):
            report = LoadReport.from_dict(report)
        with self._lock:
            site = self.sites.get(report.site)
            if site is None:
                known = ", ".join(sorted(self.sites))
                raise ConfigError("load.site", f"unknown site {report.site!r} (known: {known})")
            site.gpu_util = report.gpu_util
            site.queued_jobs = report.queued_jobs
            if report.gpus is not None:
                site.gpus = report.gpus
            site.updated = report.time if report.time is not None else self._now(now)
            site.reserved_gpus = 0  # the report includes what was placed before it
            return replace(site)

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    # --- placement -------------------------------------------------------------------------

    def candidates(self, job: Job, now: float | None = None) -> list[Candidate]:
        """Every candidate (site, path) for `job`, feasible first, best first."""
        with self._lock:
            return self._candidates(job, self._now(now), exclude_job=None)

    def _path_figures(self, path: Path) -> tuple[float | None, float | None, float | None, str]:
        state = self.states.get(path.name)
        delay = state.delay_us if state is not None else None
        source = state.source if state is not None and delay is not None else ""
        if delay is None and path.nominal_delay_us is not None:
            delay, source = float(path.nominal_delay_us), "nominal"
        loss = state.loss_ppm if state is not None else None
        jitter = state.jitter_us if state is not None else None
        return delay, loss, jitter, source

    def _evaluate(self, job: Job, path: Path, now: float, exclude_job: str | None) -> Candidate:
        site = self.sites[path.site]
        sla = job.sla
        w = self.weights
        delay, loss, jitter, source = self._path_figures(path)
        problems = []
        if site.gpus < job.gpus:
            problems.append(f"site has {site.gpus} GPUs, job needs {job.gpus}")
        if site.updated is not None and now - site.updated > w.site_stale_s:
            problems.append(f"load report {now - site.updated:.1f} s old (> {w.site_stale_s} s)")
        if sla.max_latency_us is not None:
            if delay is None:
                problems.append("no delay figure for the latency SLA")
            elif delay > sla.max_latency_us:
                problems.append(f"delay {_fmt(delay, 'µs')} > SLA {sla.max_latency_us} µs")
        if sla.max_loss_ppm is not None and loss is not None and loss > sla.max_loss_ppm:
            problems.append(f"loss {_fmt(loss, 'ppm')} > SLA {_fmt(sla.max_loss_ppm, 'ppm')}")
        if sla.max_jitter_us is not None and jitter is not None and jitter > sla.max_jitter_us:
            problems.append(f"jitter {_fmt(jitter, 'µs')} > SLA {sla.max_jitter_us} µs")
        if sla.min_bandwidth_kbps and path.capacity_kbps is not None:
            used = self.reserved_kbps.get(path.name, 0)
            own = self.placements.get(exclude_job) if exclude_job else None
            if own is not None and own.path == path.name:
                used -= own.job.sla.min_bandwidth_kbps or 0
            free = path.capacity_kbps - used
            if free < sla.min_bandwidth_kbps:
                problems.append(f"{free} kbit/s free < SLA {sla.min_bandwidth_kbps} kbit/s")
        terms = {
            "network": w.network * (delay or 0.0) / (sla.max_latency_us or REF_DELAY_US),
            "loss": w.loss * (loss or 0.0) / (sla.max_loss_ppm or REF_LOSS_PPM),
            "compute": w.compute * (site.gpu_util + site.queued_jobs / max(site.gpus, 1)),
            "queue": w.queue_penalty * (1.0 if site.free_gpus < job.gpus else 0.0),
        }
        score = sum(terms.values())
        if problems:
            return Candidate(site.name, path.name, False, score, "; ".join(problems), terms)
        age = "" if site.updated is None else f", load {now - site.updated:.1f} s old"
        why = (
            f"delay {_fmt(delay, 'µs')}" + (f" ({source})" if source else "")
            + f", loss {_fmt(loss or 0.0, 'ppm')}, gpu {site.gpu_util:.0%}"
            + f", queue {site.queued_jobs}, {site.free_gpus} GPUs free{age}"
            + (" (job would queue)" if terms["queue"] else "")
        )  # fmt: skip
        return Candidate(site.name, path.name, True, score, why, terms)

    def _candidates(self, job: Job, now: float, exclude_job: str | None) -> list[Candidate]:
        out = [
            self._evaluate(job, p, now, exclude_job)
            for p in self.paths.values()
            if p.headend == job.headend and (job.site is None or p.site == job.site)
        ]
        out.sort(key=lambda c: (not c.feasible, c.score, c.site, c.path))
        return out

    def place(self, job: Job | Mapping[str, Any], now: float | None = None) -> Decision:
        """Pick site and path for `job`, steer it there and log why (or reject, and why)."""
        if not isinstance(job, Job):
            job = Job.from_dict(job)
        with self._lock:
            now = self._now(now)
            if job.name in self.placements:
                raise ConfigError("job.name", f"{job.name!r} is already placed (release it first)")
            cands = self._candidates(job, now, exclude_job=None)
            feasible = [c for c in cands if c.feasible]
            if not feasible:
                if not cands:
                    why = f"headend {job.headend!r} has no path" + (
                        f" to site {job.site!r}" if job.site else ""
                    )
                else:
                    why = "no feasible path: " + " | ".join(f"{c.path}: {c.why}" for c in cands)
                return self._decide(now, KIND_REJECT, job, None, None, why)
            best = feasible[0]
            reason = f"{best.site} via {best.path}, score {best.score:.3f}: {best.why}"
            if len(feasible) > 1:
                runner = feasible[1]
                reason += f"; next best {runner.path} score {runner.score:.3f}"
            infeasible = len(cands) - len(feasible)
            reason += f" ({len(feasible)} feasible, {infeasible} infeasible)"
            path = self.paths[best.path]
            error = self._steer(job, path)
            if error is not None:
                return self._decide(now, KIND_STEER_FAILED, job, best.site, best.path, error)
            self.placements[job.name] = Placement(job, best.site, best.path, now)
            self.sites[best.site].reserved_gpus += job.gpus
            self._reserve(best.path, job, +1)
            details = {"terms": {k: round(v, 4) for k, v in best.terms.items()}}
            return self._decide(
                now,
                KIND_PLACE,
                job,
                best.site,
                best.path,
                reason,
                score=best.score,
                details=details,
            )

    def release(self, job_name: str) -> None:
        """Forget a finished job (frees its bandwidth on the path)."""
        with self._lock:
            placement = self.placements.pop(job_name, None)
            if placement is None:
                raise ConfigError("job.name", f"{job_name!r} is not placed")
            self._reserve(placement.path, placement.job, -1)

    def _reserve(self, path: str, job: Job, sign: int) -> None:
        bw = job.sla.min_bandwidth_kbps or 0
        self.reserved_kbps[path] = self.reserved_kbps.get(path, 0) + sign * bw

    def _steer(self, job: Job, path: Path) -> str | None:
        if self.steerer is None:
            return None
        try:
            self.steerer.steer(job, path)
        except ICPNError as e:
            return f"steering {job.name} onto {path.name} failed: {e}"
        return None

    def _decide(
        self,
        now: float,
        kind: str,
        job: Job,
        site: str | None,
        path: str | None,
        reason: str,
        *,
        previous: str | None = None,
        score: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Decision:
        decision = Decision(
            time=now,
            kind=kind,
            job=job.name,
            site=site,
            path=path,
            reason=reason,
            previous_path=previous,
            score=score,
            decided_by=self.name,
            details=details or {},
        )
        self.log.record(decision)
        return decision

    # --- telemetry and re-steering ---------------------------------------------------------

    def on_telemetry(
        self, updates: PathState | Iterable[PathState], now: float | None = None
    ) -> list[Decision]:
        """Take new path figures; re-steer the jobs whose path now breaks their SLA."""
        if isinstance(updates, PathState):
            updates = [updates]
        with self._lock:
            now = self._now(now)
            touched = set()
            for update in updates:
                if update.path not in self.paths:
                    log.debug("telemetry for unknown path %r ignored", update.path)
                    continue
                old = self.states.get(update.path)
                if old is not None:
                    update = PathState(
                        path=update.path,
                        delay_us=update.delay_us if update.delay_us is not None else old.delay_us,
                        jitter_us=(
                            update.jitter_us if update.jitter_us is not None else old.jitter_us
                        ),
                        loss_ppm=update.loss_ppm if update.loss_ppm is not None else old.loss_ppm,
                        updated=update.updated if update.updated is not None else now,
                        source=update.source or old.source,
                    )
                elif update.updated is None:
                    update = replace(update, updated=now)
                self.states[update.path] = update
                touched.add(update.path)
            decisions = []
            for placement in list(self.placements.values()):
                if placement.path in touched:
                    decision = self._check(placement, now)
                    if decision is not None:
                        decisions.append(decision)
            return decisions

    def violations(self, job: Job, path: str) -> list[str]:
        """How the measured state of `path` breaks `job`'s SLA (empty: it does not)."""
        state = self.states.get(path)
        if state is None:
            return []
        sla = job.sla
        out = []
        src = f" ({state.source})" if state.source else ""
        if sla.max_latency_us is not None and state.delay_us is not None:
            if state.delay_us > sla.max_latency_us:
                out.append(f"delay {_fmt(state.delay_us, 'µs')} > SLA {sla.max_latency_us} µs{src}")
        if sla.max_loss_ppm is not None and state.loss_ppm is not None:
            if state.loss_ppm > sla.max_loss_ppm:
                out.append(
                    f"loss {_fmt(state.loss_ppm, 'ppm')} > SLA {_fmt(sla.max_loss_ppm, 'ppm')}{src}"
                )
        if sla.max_jitter_us is not None and state.jitter_us is not None:
            if state.jitter_us > sla.max_jitter_us:
                out.append(
                    f"jitter {_fmt(state.jitter_us, 'µs')} > SLA {sla.max_jitter_us} µs{src}"
                )
        return out

    def _check(self, placement: Placement, now: float) -> Decision | None:
        job = placement.job
        broken = self.violations(job, placement.path)
        if not broken:
            placement.violations = 0
            if placement.degraded:
                placement.degraded = False
                return self._decide(
                    now,
                    KIND_RECOVERED,
                    job,
                    placement.site,
                    placement.path,
                    f"path {placement.path} is back within the SLA",
                )
            return None
        placement.violations += 1
        if placement.violations < self.weights.violations_to_resteer:
            return None
        # The job already runs at its site: only paths to that site, and no GPU terms.
        pinned = replace(job, site=placement.site, gpus=0)
        alternatives = [
            c
            for c in self._candidates(pinned, now, exclude_job=job.name)
            if c.path != placement.path
        ]
        feasible = [c for c in alternatives if c.feasible]
        cause = f"path {placement.path}: " + ", ".join(broken)
        if not feasible:
            if placement.degraded:
                return None
            placement.degraded = True
            others = " | ".join(f"{c.path}: {c.why}" for c in alternatives) or "none"
            return self._decide(
                now,
                KIND_DEGRADED,
                job,
                placement.site,
                placement.path,
                f"{cause}; no alternative path to {placement.site} meets the SLA ({others})",
            )
        best = feasible[0]
        path = self.paths[best.path]
        error = self._steer(job, path)
        if error is not None:
            return self._decide(
                now, KIND_STEER_FAILED, job, placement.site, placement.path, f"{cause}; {error}"
            )
        previous = placement.path
        self._reserve(previous, job, -1)
        self._reserve(best.path, job, +1)
        placement.path = best.path
        placement.since = now
        placement.violations = 0
        placement.degraded = False
        return self._decide(
            now,
            KIND_RESTEER,
            job,
            placement.site,
            best.path,
            f"{cause}; moved to {best.path} (score {best.score:.3f}: {best.why}; "
            f"{len(feasible)} of {len(alternatives)} alternatives feasible)",
            previous=previous,
            score=best.score,
        )

    # --- read side -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Sites, path states and placements, JSON-serialisable (``GET /state``)."""
        with self._lock:
            return {
                "decided_by": self.name,
                "sites": [s.as_dict() for s in self.sites.values()],
                "paths": [
                    {
                        "name": p.name,
                        "headend": p.headend,
                        "site": p.site,
                        "segments": list(p.segments),
                        "reserved_kbps": self.reserved_kbps.get(p.name, 0),
                        "state": self.states[p.name].as_dict() if p.name in self.states else None,
                    }
                    for p in self.paths.values()
                ],
                "placements": [
                    {
                        "job": pl.job.as_dict(),
                        "site": pl.site,
                        "path": pl.path,
                        "since": pl.since,
                        "degraded": pl.degraded,
                    }
                    for pl in self.placements.values()
                ],
            }
