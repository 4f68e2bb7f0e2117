"""What the scheduler reasons about: sites, SRv6 paths, their live state, jobs with SLAs, decisions.

Every ``from_dict`` validates and raises `ConfigError` naming the field and the value, so the
HTTP API and the YAML configuration report bad input the same way.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyctl.errors import ConfigError

KIND_PLACE = "place"
KIND_REJECT = "reject"
KIND_RESTEER = "resteer"
KIND_DEGRADED = "degraded"
KIND_RECOVERED = "recovered"
KIND_STEER_FAILED = "steer-failed"


def _allowed(obj: Mapping[str, Any], where: str, keys: tuple[str, ...]) -> None:
    if not isinstance(obj, Mapping):
        raise ConfigError(where, f"expected an object, got {obj!r}")
    for key in obj:
        if key not in keys:
            raise ConfigError(where, f"unknown field {key!r} (allowed: {', '.join(keys)})")


def _int(
    obj: Mapping[str, Any], key: str, where: str, lo: int, hi: int, default: int | None
) -> int:
    value = obj.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"{where}.{key}", "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}", f"expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}", f"{value} is out of range [{lo}, {hi}]")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, where, lo, hi, None)


def _num(
    obj: Mapping[str, Any], key: str, where: str, lo: float, hi: float, default: float | None
) -> float:
    value = obj.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"{where}.{key}", "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where}.{key}", f"expected a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}", f"{value} is out of range [{lo}, {hi}]")
    return float(value)


def _opt_num(obj: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    return None if obj.get(key) is None else _num(obj, key, where, lo, hi, None)


def _name(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ConfigError(f"{where}.{key}", f"expected a name (1-128 characters), got {value!r}")
    return value


BIG = 2**62


@dataclass(frozen=True)
class SLA:
    """Bounds a job's or flow's path must meet; None = no bound."""

    max_latency_us: int | None = None
    max_loss_ppm: float | None = None
    max_jitter_us: int | None = None
    min_bandwidth_kbps: int | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any] | None, where: str = "sla") -> SLA:
        if obj is None:
            return cls()
        keys = ("max_latency_us", "max_loss_ppm", "max_jitter_us", "min_bandwidth_kbps")
        _allowed(obj, where, keys)
        return cls(
            max_latency_us=_opt_int(obj, "max_latency_us", where, 1, BIG),
            max_loss_ppm=_opt_num(obj, "max_loss_ppm", where, 0, 1e6),
            max_jitter_us=_opt_int(obj, "max_jitter_us", where, 0, BIG),
            min_bandwidth_kbps=_opt_int(obj, "min_bandwidth_kbps", where, 0, BIG),
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Job:
    """A job (needs `gpus` at a site) or a flow (``gpus=0``, usually pinned with `site`).

    Its traffic enters the SRv6 network at `headend`; the scheduler picks the site (unless
    pinned) and one of the headend's paths to it.
    """

    name: str
    headend: str
    sla: SLA = SLA()
    gpus: int = 0
    site: str | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "job") -> Job:
        _allowed(obj, where, ("name", "headend", "sla", "gpus", "site"))
        return cls(
            name=_name(obj, "name", where),
            headend=_name(obj, "headend", where),
            sla=SLA.from_dict(obj.get("sla"), f"{where}.sla"),
            gpus=_int(obj, "gpus", where, 0, 1 << 20, 0),
            site=_name(obj, "site", where, required=False) or None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "headend": self.headend,
            "gpus": self.gpus,
            "site": self.site,
            "sla": self.sla.as_dict(),
        }


@dataclass(frozen=True)
class Path:
    """One SRv6 path (SID list) from a headend to a compute site.

    Telemetry finds it by `flowmon_id` (the IFIT flow that measures it: one-way delay, jitter,
    loss per colour period) or, failing that, by `nodes` (the IFIT node ids it crosses: the sum
    of the per-hop delays). `nominal_delay_us` stands in until the first measurement.
    """

    name: str
    headend: str
    site: str
    segments: tuple[str, ...]
    nodes: tuple[int, ...] = ()
    flowmon_id: int | None = None
    capacity_kbps: int | None = None
    nominal_delay_us: int | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "path") -> Path:
        keys = (
            "name",
            "headend",
            "site",
            "segments",
            "nodes",
            "flowmon_id",
            "capacity_kbps",
            "nominal_delay_us",
        )
        _allowed(obj, where, keys)
        segments = obj.get("segments")
        if not isinstance(segments, list) or not segments:
            raise ConfigError(f"{where}.segments", f"expected a list of SIDs, got {segments!r}")
        for i, sid in enumerate(segments):
            try:
                ipaddress.IPv6Address(sid)
            except (ValueError, TypeError):
                raise ConfigError(f"{where}.segments[{i}]", f"{sid!r} is not an IPv6 SID") from None
        nodes = obj.get("nodes") or []
        if not isinstance(nodes, list) or any(
            isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1 << 32 for n in nodes
        ):
            raise ConfigError(f"{where}.nodes", f"expected a list of node ids, got {nodes!r}")
        return cls(
            name=_name(obj, "name", where),
            headend=_name(obj, "headend", where),
            site=_name(obj, "site", where),
            segments=tuple(str(ipaddress.IPv6Address(s)) for s in segments),
            nodes=tuple(nodes),
            flowmon_id=_opt_int(obj, "flowmon_id", where, 0, (1 << 20) - 1),
            capacity_kbps=_opt_int(obj, "capacity_kbps", where, 0, BIG),
            nominal_delay_us=_opt_int(obj, "nominal_delay_us", where, 0, BIG),
        )

    def as_config(self) -> dict[str, Any]:
        """The path as a scheduler configuration writes it (`from_dict` reads it back)."""
        out: dict[str, Any] = {
            "name": self.name,
            "headend": self.headend,
            "site": self.site,
            "segments": list(self.segments),
        }
        if self.nodes:
            out["nodes"] = list(self.nodes)
        for key in ("flowmon_id", "capacity_kbps", "nominal_delay_us"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass
class Site:
    """A compute site and its last reported load. `reserved_gpus` counts what the scheduler
    placed there since that report (the next report is assumed to include it)."""

    name: str
    gpus: int
    gpu_util: float = 0.0
    queued_jobs: int = 0
    updated: float | None = None
    reserved_gpus: int = 0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "site") -> Site:
        _allowed(obj, where, ("name", "gpus", "gpu_util", "queued_jobs"))
        return cls(
            name=_name(obj, "name", where),
            gpus=_int(obj, "gpus", where, 0, 1 << 20, None),
            gpu_util=_num(obj, "gpu_util", where, 0.0, 1.0, 0.0),
            queued_jobs=_int(obj, "queued_jobs", where, 0, 1 << 30, 0),
        )

    @property
    def free_gpus(self) -> int:
        """GPUs idle by the last report, minus those placed since."""
        return max(0, math.floor(self.gpus * (1.0 - self.gpu_util) + 1e-9) - self.reserved_gpus)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gpus": self.gpus,
            "gpu_util": self.gpu_util,
            "queued_jobs": self.queued_jobs,
            "free_gpus": self.free_gpus,
            "reserved_gpus": self.reserved_gpus,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class LoadReport:
    """What a compute site reports (``POST /load`` body, or `Scheduler.report_load`)."""

    site: str
    gpu_util: float
    queued_jobs: int = 0
    gpus: int | None = None
    time: float | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "load") -> LoadReport:
        _allowed(obj, where, ("site", "gpu_util", "queued_jobs", "gpus", "time"))
        return cls(
            site=_name(obj, "site", where),
            gpu_util=_num(obj, "gpu_util", where, 0.0, 1.0, None),
            queued_jobs=_int(obj, "queued_jobs", where, 0, 1 << 30, 0),
            gpus=_opt_int(obj, "gpus", where, 0, 1 << 20),
            time=_opt_num(obj, "time", where, 0.0, 1e12),
        )


@dataclass(frozen=True)
class PathState:
    """Live figures of one path (from the collector); None = not measured."""

    path: str
    delay_us: float | None = None
    jitter_us: float | None = None
    loss_ppm: float | None = None
    updated: float | None = None
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


@dataclass(frozen=True)
class Decision:
    """One scheduling decision and why; `kind` is place, reject, resteer, degraded, recovered or
    steer-failed."""

    time: float
    kind: str
    job: str
    site: str | None
    path: str | None
    reason: str
    previous_path: str | None = None
    score: float | None = None
    decided_by: str = "centralised"
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": round(self.time, 6),
            "kind": self.kind,
            "job": self.job,
            "site": self.site,
            "path": self.path,
            "previous_path": self.previous_path,
            "score": None if self.score is None else round(self.score, 4),
            "decided_by": self.decided_by,
            "reason": self.reason,
        }
        if self.details:
            out["details"] = dict(self.details)
        return out
