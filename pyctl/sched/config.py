"""The scheduler's YAML configuration: compute sites, SRv6 paths, score weights.

sites:
  - {name: dc1, gpus: 32, gpu_util: 0.1, queued_jobs: 0}
paths:
  - name: h1-dc1-a
    headend: h1
    site: dc1
    segments: ["fc00:2::1", "fc00:5::100"]   # the SID list
    nodes: [1, 2, 5]                         # IFIT node ids on the way (optional)
    flowmon_id: 11                           # IFIT flow measuring the path (optional)
    capacity_kbps: 1000000                   # optional
    nominal_delay_us: 2000                   # optional, until measured
weights: {network: 1, loss: 1, compute: 1, queue_penalty: 1, site_stale_s: 30,
          violations_to_resteer: 1}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import yaml

from pyctl.errors import ConfigError
from pyctl.sched.model import Path, Site
from pyctl.sched.scheduler import Weights


@dataclass(frozen=True)
class SchedConfig:
    sites: tuple[Site, ...]
    paths: tuple[Path, ...]
    weights: Weights


def sched_config_from_dict(data: Any, source: str = "<config>") -> SchedConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected a mapping with sites and paths, got {data!r}")
    for key in data:
        if key not in ("sites", "paths", "weights"):
            raise ConfigError(source, f"unknown field {key!r} (allowed: sites, paths, weights)")
    sites_raw = data.get("sites")
    paths_raw = data.get("paths")
    if not isinstance(sites_raw, list) or not sites_raw:
        raise ConfigError(f"{source}: sites", f"expected a non-empty list, got {sites_raw!r}")
    if not isinstance(paths_raw, list) or not paths_raw:
        raise ConfigError(f"{source}: paths", f"expected a non-empty list, got {paths_raw!r}")
    sites = tuple(Site.from_dict(s, f"{source}: sites[{i}]") for i, s in enumerate(sites_raw))
    names = [s.name for s in sites]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{source}: sites", f"duplicate site names {sorted(dup)}")
    paths = tuple(Path.from_dict(p, f"{source}: paths[{i}]") for i, p in enumerate(paths_raw))
    for i, p in enumerate(paths):
        if p.site not in names:
            raise ConfigError(f"{source}: paths[{i}].site", f"unknown site {p.site!r}")
    pnames = [p.name for p in paths]
    dup = {n for n in pnames if pnames.count(n) > 1}
    if dup:
        raise ConfigError(f"{source}: paths", f"duplicate path names {sorted(dup)}")
    weights = Weights.from_dict(data.get("weights"), f"{source}: weights")
    return SchedConfig(sites, paths, weights)


def load_sched_config(path: str | FilePath) -> SchedConfig:
    source = str(path)
    try:
        text = FilePath(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(source, f"cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(source, f"not valid YAML: {e}") from None
    return sched_config_from_dict(data, source)
