"""Compute-aware joint scheduling: pick the site and SRv6 path from compute load and telemetry.

See docs/scheduler.md. `Scheduler` is the centralised mode, `DistributedScheduler` the
per-headend mode; `CollectorFeed` connects an IFIT `pyctl.telemetry.Collector`; `load_api`
serves the HTTP API (POST /load, /place, /release, /telemetry; GET /state, /decisions).
"""

from pyctl.sched.api import load_api
from pyctl.sched.config import SchedConfig, load_sched_config, sched_config_from_dict
from pyctl.sched.distributed import (
    Comparison,
    DistributedScheduler,
    Scenario,
    compare_modes,
    default_scenario,
)
from pyctl.sched.feed import CollectorFeed, path_states_from_collector
from pyctl.sched.model import SLA, Decision, Job, LoadReport, Path, PathState, Site
from pyctl.sched.scheduler import (
    Candidate,
    DecisionLog,
    LoggingSteerer,
    RecordingSteerer,
    Scheduler,
    Steerer,
    Weights,
)

__all__ = [
    "SLA",
    "Candidate",
    "CollectorFeed",
    "Comparison",
    "Decision",
    "DecisionLog",
    "DistributedScheduler",
    "Job",
    "LoadReport",
    "LoggingSteerer",
    "Path",
    "PathState",
    "RecordingSteerer",
    "Scenario",
    "SchedConfig",
    "Scheduler",
    "Site",
    "Steerer",
    "Weights",
    "compare_modes",
    "default_scenario",
    "load_api",
    "load_sched_config",
    "path_states_from_collector",
    "sched_config_from_dict",
]
