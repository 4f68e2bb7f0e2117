"""Compute-aware scheduling: placement by the documented score, SLA feasibility, re-steering
on degraded telemetry (also end to end from IFIT report bytes, within two colour periods),
the decision log, the load-report API, the configuration, and distributed vs centralised."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path as FilePath
from typing import Any

import pytest

from pyctl.errors import ConfigError, ICPNError
from pyctl.sched import (
    SLA,
    CollectorFeed,
    DecisionLog,
    DistributedScheduler,
    Job,
    LoadReport,
    Path,
    PathState,
    RecordingSteerer,
    Scheduler,
    Site,
    Weights,
    compare_modes,
    default_scenario,
    load_api,
    load_sched_config,
    path_states_from_collector,
)
from pyctl.sched.cli import main as sched_main
from pyctl.telemetry import (
    Collector,
    CollectorConfig,
    HopRecord,
    encode_counter_report,
    encode_trace_report,
)


def path(name: str, headend: str, site: str, delay: int | None = None, **kw: Any) -> Path:
    return Path(name, headend, site, (f"fc00:{len(name)}::1",), nominal_delay_us=delay, **kw)


def world(**kw: Any) -> tuple[Scheduler, RecordingSteerer, io.StringIO]:
    sites = [Site("dc1", 16), Site("dc2", 16)]
    paths = [
        path("a1", "h1", "dc1", 2000, flowmon_id=1),
        path("a2", "h1", "dc1", 3000, flowmon_id=2),
        path("b1", "h1", "dc2", 4000, flowmon_id=3),
        path("c1", "h2", "dc2", 1000),
    ]
    steerer = RecordingSteerer()
    out = io.StringIO()
    s = Scheduler(sites, paths, steerer=steerer, decision_log=DecisionLog(out), **kw)
    return s, steerer, out


def test_placement_follows_the_documented_score() -> None:
    s, steerer, _ = world()
    s.report_load(LoadReport("dc1", 0.5, queued_jobs=4), now=0.0)
    s.report_load({"site": "dc2", "gpu_util": 0.25}, now=0.0)
    job = Job("j1", "h1", SLA(max_latency_us=10_000), gpus=2)
    cands = s.candidates(job, now=1.0)
    scores = {c.path: round(c.score, 4) for c in cands}
    # network delay/10000 + compute (util + queue/gpus) + queue penalty 0
    assert scores == {"a1": 0.2 + 0.75, "a2": 0.3 + 0.75, "b1": 0.4 + 0.25}
    d = s.place(job, now=1.0)
    assert (d.kind, d.site, d.path) == ("place", "dc2", "b1")
    assert d.score == pytest.approx(0.65)
    assert "dc2 via b1, score 0.650" in d.reason and "next best a1" in d.reason
    assert steerer.calls == [("j1", "b1")]
    assert s.sites["dc2"].reserved_gpus == 2 and s.sites["dc2"].free_gpus == 10


def test_telemetry_and_queue_penalty_change_the_choice() -> None:
    s, _, _ = world()
    s.on_telemetry([PathState("b1", delay_us=9000)], now=0.0)
    d = s.place(Job("j", "h1", SLA(max_latency_us=10_000), gpus=1), now=0.0)
    assert d.path == "a1" and "delay 2000 µs (nominal)" in d.reason
    s.report_load(LoadReport("dc1", 1.0), now=1.0)  # dc1 full: a job there would queue
    d = s.place(Job("k", "h1", SLA(max_latency_us=10_000), gpus=1), now=1.0)
    assert d.path == "b1" and "delay 9000 µs" in d.reason


def test_infeasible_candidates_and_rejections_say_why() -> None:
    s, steerer, _ = world()
    s.on_telemetry([PathState("a1", delay_us=6000, loss_ppm=50), PathState("b1", loss_ppm=900)])
    job = Job("j", "h1", SLA(max_latency_us=5000, max_loss_ppm=100), gpus=4)
    d = s.place(job, now=0.0)
    assert (d.kind, d.path) == ("place", "a2")
    whys = {c.path: c.why for c in s.candidates(job, now=0.0) if not c.feasible}
    assert whys == {"a1": "delay 6000 µs > SLA 5000 µs", "b1": "loss 900 ppm > SLA 100 ppm"}
    d = s.place(Job("big", "h1", gpus=64), now=0.0)
    assert d.kind == "reject" and "site has 16 GPUs, job needs 64" in d.reason
    d = s.place(Job("x", "h9"), now=0.0)
    assert d.kind == "reject" and "headend 'h9' has no path" in d.reason
    assert [c[0] for c in steerer.calls] == ["j"]
    s.report_load(LoadReport("dc2", 0.0), now=0.0)
    d = s.place(Job("late", "h2", site="dc2"), now=100.0)
    assert d.kind == "reject" and "load report 100.0 s old" in d.reason


def test_bandwidth_reservations() -> None:
    sites = [Site("dc1", 8)]
    paths = [path("p", "h1", "dc1", 1000, capacity_kbps=1000), path("q", "h1", "dc1", 5000)]
    s = Scheduler(sites, paths)
    sla = SLA(min_bandwidth_kbps=600)
    assert s.place(Job("f1", "h1", sla, site="dc1"), now=0).path == "p"
    d = s.place(Job("f2", "h1", sla, site="dc1"), now=0)
    assert d.path == "q"  # p has 400 kbit/s left
    assert not next(c for c in s.candidates(Job("f3", "h1", sla), now=0) if c.path == "p").feasible
    s.release("f1")
    assert s.place(Job("f3", "h1", sla, site="dc1"), now=0).path == "p"
    with pytest.raises(ConfigError, match="'f1' is not placed"):
        s.release("f1")
    with pytest.raises(ConfigError, match="'f3' is already placed"):
        s.place(Job("f3", "h1"), now=0)


def test_resteer_when_delay_passes_the_sla_and_the_decision_log() -> None:
    s, steerer, out = world()
    job = Job("j", "h1", SLA(max_latency_us=5000), site="dc1")
    assert s.place(job, now=0.0).path == "a1"
    assert s.on_telemetry([PathState("a1", delay_us=4000, source="t")], now=1.0) == []
    (d,) = s.on_telemetry([PathState("a1", delay_us=7000, source="t")], now=2.0)
    assert (d.kind, d.previous_path, d.path, d.site) == ("resteer", "a1", "a2", "dc1")
    assert d.reason.startswith("path a1: delay 7000 µs > SLA 5000 µs (t); moved to a2")
    assert steerer.calls == [("j", "a1"), ("j", "a2")]
    # a2 degrades too and the only other dc1 path is bad: degraded, logged once
    s.on_telemetry([PathState("a1", delay_us=9000)], now=3.0)
    (d,) = s.on_telemetry([PathState("a2", delay_us=8000)], now=3.0)
    assert d.kind == "degraded" and "no alternative path to dc1" in d.reason
    assert s.on_telemetry([PathState("a2", delay_us=8500)], now=4.0) == []
    (d,) = s.on_telemetry([PathState("a2", delay_us=3000)], now=5.0)
    assert d.kind == "recovered"
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["kind"] for x in lines] == ["place", "resteer", "degraded", "recovered"]
    assert all(x["reason"] and x["decided_by"] == "centralised" for x in lines)
    assert lines[1]["time"] == 2.0 and lines[1]["previous_path"] == "a1"
    assert [d.kind for d in s.log.tail(2)] == ["degraded", "recovered"]


def test_resteer_needs_consecutive_violations_when_configured() -> None:
    s, _, _ = world(weights=Weights(violations_to_resteer=2))
    s.place(Job("j", "h1", SLA(max_loss_ppm=100), site="dc1"), now=0.0)
    assert s.on_telemetry(PathState("a1", loss_ppm=500), now=1.0) == []
    assert s.on_telemetry(PathState("a1", loss_ppm=0), now=2.0) == []
    assert s.on_telemetry(PathState("a1", loss_ppm=500), now=3.0) == []
    (d,) = s.on_telemetry(PathState("a1", loss_ppm=600), now=4.0)
    assert d.kind == "resteer" and "loss 600 ppm > SLA 100 ppm" in d.reason


class FailingSteerer:
    def steer(self, job: Job, path: Path) -> None:
        raise ICPNError(f"controller down for {path.name}")


def test_steering_failure_is_a_decision_not_a_crash() -> None:
    s = Scheduler([Site("dc1", 4)], [path("p", "h1", "dc1", 10)], steerer=FailingSteerer())
    d = s.place(Job("j", "h1"), now=0.0)
    assert d.kind == "steer-failed" and "controller down for p" in d.reason
    assert s.placements == {}


def test_load_reports_are_validated() -> None:
    s, _, _ = world()
    with pytest.raises(ConfigError, match=r"load.gpu_util: 1.5 is out of range \[0.0, 1.0\]"):
        s.report_load({"site": "dc1", "gpu_util": 1.5})
    with pytest.raises(ConfigError, match="load.site: unknown site 'dc9'"):
        s.report_load({"site": "dc9", "gpu_util": 0.5})
    with pytest.raises(ConfigError, match="load: unknown field 'cpu'"):
        s.report_load({"site": "dc1", "gpu_util": 0.5, "cpu": 1})
    with pytest.raises(ConfigError, match="job.sla.max_latency_us: expected an integer"):
        s.place({"name": "j", "headend": "h1", "sla": {"max_latency_us": "fast"}})
    site = s.report_load({"site": "dc1", "gpu_util": 0.5, "gpus": 32, "queued_jobs": 2}, now=5)
    assert (site.gpus, site.free_gpus, site.updated) == (32, 16, 5)


def post(url: str, obj: Any) -> tuple[int, Any]:
    data = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_load_api() -> None:
    s, steerer, _ = world()
    api = load_api(s, "127.0.0.1", 0).start()
    try:
        url = api.url
        assert post(url + "/load", {"site": "dc1", "gpu_util": 0.9, "queued_jobs": 7}) == (
            200,
            {"ok": True, "site": "dc1"},
        )
        assert s.sites["dc1"].queued_jobs == 7
        code, text = post(url + "/load", {"site": "dc1", "gpu_util": 2})
        assert code == 400 and "load.gpu_util: 2 is out of range" in text
        code, text = post(url + "/load", b"{not json")
        assert code == 400 and "load: body is not JSON" in text
        code, decision = post(url + "/place", {"name": "j", "headend": "h1", "gpus": 1})
        assert code == 200 and decision["kind"] == "place" and decision["site"] == "dc2"
        code, decisions = post(url + "/telemetry", [{"path": "b1", "delay_us": 50_000}])
        assert code == 200 and decisions == []  # j has no latency bound
        code, text = post(url + "/telemetry", [{"path": "b1", "delay_us": -1}])
        assert code == 400 and "telemetry[0].delay_us" in text
        with urllib.request.urlopen(url + "/state", timeout=5) as resp:
            state = json.loads(resp.read())
        assert state["placements"][0]["path"] == "b1"
        assert next(p for p in state["paths"] if p["name"] == "b1")["state"]["delay_us"] == 50_000
        with urllib.request.urlopen(url + "/decisions", timeout=5) as resp:
            assert [d["job"] for d in json.loads(resp.read())] == ["j"]
        assert post(url + "/release", {"name": "j"}) == (200, {"ok": True})
        assert post(url + "/release", {"name": "j"})[0] == 400
        assert post(url + "/nothing", {})[0] == 404
    finally:
        api.stop()
    assert steerer.calls == [("j", "b1")]


def trace(flowmon: int, t0: int, delay: int) -> bytes:
    hops = [HopRecord(1, 64, 1, 2, t0, 0), HopRecord(9, 63, 1, 2, t0 + delay, 0)]
    return encode_trace_report(flowmon_id=flowmon, colour=0, hops=hops, src="::1", dst="::2")


def test_resteer_from_ifit_reports_within_two_colour_periods() -> None:
    """Bytes -> collector -> CollectorFeed -> scheduler -> steerer: a1's delay jumps from 2 ms
    to 8 ms (SLA 5 ms) at t = 2.3 s; the job is moved to a2 before t = 2.3 + 2 periods."""
    collector = Collector(CollectorConfig(period_s=1.0))
    s, steerer, _ = world()
    feed = CollectorFeed(collector, s)
    degrade_at = 2.3
    placed = None
    for step in range(60):
        now = 0.05 + step * 0.1
        t0 = step * 100_000
        a1 = 8000 if now >= degrade_at else 2000
        collector.feed(trace(1, t0, a1), ("::1", 1), now)
        collector.feed(trace(2, t0, 3000), ("::1", 1), now)
        if placed is None and now >= 1.5:
            placed = s.place(Job("j", "h1", SLA(max_latency_us=5000), site="dc1"), now)
            assert placed.path == "a1" and "IFIT flowmon 1" in placed.reason
        if feed.decisions:
            break
    (d,) = feed.decisions
    assert (d.kind, d.previous_path, d.path) == ("resteer", "a1", "a2")
    assert degrade_at < d.time <= degrade_at + 2 * 1.0
    # period [2, 3) s: 3 reports at 2 ms and 7 at 8 ms, mean 6.2 ms: moved at its end
    assert "delay 6200 µs > SLA 5000 µs (IFIT flowmon 1, raw clocks)" in d.reason
    assert d.time == pytest.approx(3.05)
    assert steerer.calls[-1] == ("j", "a2")


def test_resteer_on_loss_from_counter_records() -> None:
    collector = Collector(CollectorConfig(period_s=1.0))
    s, steerer, _ = world()
    CollectorFeed(collector, s)
    s.place(Job("f", "h1", SLA(max_loss_ppm=1000), site="dc1"), now=0.0)
    assert steerer.calls == [("f", "a1")]
    collector.feed(trace(1, 0, 100), ("::1", 1), 0.5)  # path of flowmon 1: 1 -> 9
    for node, packets in ((1, 10_000), (9, 9_800)):  # 2% lost in this period
        counter = encode_counter_report(
            flowmon_id=1, colour=0, node_id=node, ts_us=0, packets=packets, octets=packets
        )
        collector.feed(counter, ("::1", 1), 0.9)
    collector.tick(1.0)
    states = {p.path: p for p in path_states_from_collector(collector, s.paths.values(), 1.0)}
    assert states["a1"].loss_ppm == 20_000
    assert steerer.calls[-1] == ("f", "a2")
    assert s.placements["f"].path == "a2"


def test_link_based_path_figures() -> None:
    collector = Collector(CollectorConfig(period_s=1.0))
    hops = [HopRecord(1, 64, 1, 2, 0), HopRecord(2, 63, 1, 2, 300), HopRecord(3, 62, 1, 2, 700)]
    data = encode_trace_report(flowmon_id=5, colour=0, hops=hops, src="::1", dst="::2")
    collector.feed(data, None, 0.5)
    collector.tick(1.0)
    p = path("n", "h1", "dc1", nodes=(1, 2, 3))
    (state,) = path_states_from_collector(collector, [p, path("m", "h1", "dc1")], 1.0)
    assert (state.path, state.delay_us, state.loss_ppm) == ("n", 700, None)
    assert state.source == "IFIT hops 1-2-3, raw clocks"


def test_distributed_decisions_differ_when_remote_state_is_stale() -> None:
    sites = [Site("dc1", 8), Site("dc2", 8)]
    paths = [path("h1-dc1", "h1", "dc1", 1000), path("h1-dc2", "h1", "dc2", 3000),
             path("h2-dc1", "h2", "dc1", 1000), path("h2-dc2", "h2", "dc2", 3000)]  # fmt: skip
    central = Scheduler(sites, paths)
    dist = DistributedScheduler(sites, paths, refresh_s=5.0)
    for sched in (central, dist):
        sched.report_load(LoadReport("dc1", 0.0), 0.0)
        sched.report_load(LoadReport("dc2", 0.0), 0.0)
        assert sched.place(Job("early", "h1", gpus=1), 0.0).site == "dc1"
        sched.report_load(LoadReport("dc1", 1.0, queued_jobs=4), 1.0)  # dc1 fills up
    late_c = central.place(Job("late", "h1", gpus=1), 2.0)
    late_d = dist.place(Job("late", "h1", gpus=1), 2.0)
    assert (late_c.site, late_d.site) == ("dc2", "dc1")  # h1 still sees dc1 as idle
    assert late_d.decided_by == "headend:h1" and "load 2.0 s old" in late_d.reason
    # after the next gossip round the headends agree again
    assert dist.place(Job("later", "h2", gpus=1), 6.0).site == "dc2"
    # local telemetry only: h2's agent never hears about h1's paths
    dist.on_telemetry([PathState("h1-dc2", delay_us=9000)], 7.0)
    assert "h1-dc2" in dist.agents["h1"].states and dist.agents["h2"].states == {}


def test_a_headend_remembers_its_own_placements_across_gossip_rounds() -> None:
    sites = [Site("dc1", 2), Site("dc2", 2)]
    paths = [path("near", "h1", "dc1", 1000), path("far", "h1", "dc2", 3000)]
    dist = DistributedScheduler(sites, paths, refresh_s=0.0)
    dist.report_load(LoadReport("dc1", 0.0), 0.0)
    dist.report_load(LoadReport("dc2", 0.0), 0.0)
    sites_chosen = [dist.place(Job(f"j{i}", "h1", gpus=1), float(i)).site for i in range(4)]
    assert sites_chosen == ["dc1", "dc1", "dc2", "dc2"]
    dist.report_load(LoadReport("dc1", 0.5), 10.0)  # news: dc1 has one GPU free again
    assert dist.place(Job("j9", "h1", gpus=1), 10.0).site == "dc1"


def test_compare_modes_on_the_default_scenario() -> None:
    result = compare_modes(default_scenario(), refresh_s=5.0)
    c, d = result.centralised, result.distributed
    assert c.placed == d.placed == 16
    # Worked by hand from the scoring rule (docs/scheduler.md) and default_scenario(): 4-GPU jobs
    # every 0.5 s from t=0.25, even ones at h1, odd at h2; SLA 10 ms, so network = delay / 10 ms;
    # compute = util + queued / gpus; +1 when the site's free GPUs < 4. Truly free GPUs:
    # floor(gpus * (1 - util)): dc1 28, dc2 22, dc3 12 at t=0; dc1 1 from t=3; dc2 3 from t=5.5.
    # h1's scores at t=0: dc1-a .2+.1 = .3, dc1-b .5, dc2 .5+.3 = .8, dc3 .8+.2 = 1.0;
    # h2's: dc2-a .2+.3 = .5, dc2-b .6, dc1 .5+.1 = .6, dc3 .6+.2 = .8.
    # Distributed (gossip every 5 s; h1 refreshes at 0.25 and 5.25, h2 at 0.75 and 5.75):
    #  h1 job00-06 -> dc1-a (its view: dc1 idle); job08 at 4.25 -> dc1-b (dc1-a at 12 ms breaks
    #  the SLA since t=4); job10 at 5.25 learns dc1's t=3 report (dc1-b 2.51) -> dc2 .8, and
    #  job12, job14 too (no refresh before 10.25, dc2's t=5.5 report unseen);
    #  h2 job01-09 -> dc2-a (5 x 4 of dc2's 22); job11 at 5.75 sees dc1 and dc2 full
    #  (dc2-a .2+.9+3/32+1 = 2.19) -> dc3 .8, and job13, job15 too.
    #  In truth: job06 and job08 go to dc1 with 1 then 0 GPUs free while dc2 has 10 and 6:
    #  avoidable; job10, job12, job14 find dc2 at 2, 3 (its t=5.5 report), 0 GPUs free while
    #  dc3 has 12, 8, 4: avoidable.
    #  5 avoidable; h2's jobs all fit (dc2 22 -> 2, dc3 12 -> 0).
    # Centralised (one view, placements counted): job06 sees dc1 full -> dc2 .8; job08, job09,
    #  job10 -> dc3 (dc2 down to 2 free: +1); from job11 on no site has 4 GPUs free in truth
    #  either, so those jobs queue with nothing avoidable: 0 (job11-15 -> dc3: 1.8 / 2.0 against
    #  dc2's 2.19 / 2.49 and dc1's 2.61 / 2.51).
    assert c.avoidable == 0 and d.avoidable == 5
    placed_c = {x.job: x.site for x in c.decisions if x.kind == "place"}
    assert placed_c == {
        **{f"job{i:02d}": "dc1" for i in (0, 2, 4)},
        **{f"job{i:02d}": "dc2" for i in (1, 3, 5, 6, 7)},
        **{f"job{i:02d}": "dc3" for i in range(8, 16)},
    }
    placed_d = {x.job: x.site for x in d.decisions if x.kind == "place"}
    assert placed_d == {
        **{f"job{i:02d}": "dc1" for i in (0, 2, 4, 6, 8)},
        **{f"job{i:02d}": "dc2" for i in (10, 12, 14, 1, 3, 5, 7, 9)},
        **{f"job{i:02d}": "dc3" for i in (11, 13, 15)},
    }
    assert result.differing and all(a != b for _, a, b in result.differing)
    assert ("job06", "dc2/h1-dc2", "dc1/h1-dc1-a") in result.differing  # dc1 full since t=3
    assert c.resteers >= 1 and d.resteers >= 1  # both react to h1-dc1-a degrading
    zero = compare_modes(default_scenario(), refresh_s=0.0)
    assert 0 < zero.distributed.avoidable < d.avoidable  # fresh load, other headends unseen
    assert "avoidable (GPUs free elsewhere)" in result.table()


CONFIG = """
sites:
  - {name: dc1, gpus: 16, gpu_util: 0.2}
  - {name: dc2, gpus: 8}
paths:
  - {name: p1, headend: h1, site: dc1, segments: ["fc00:2::1", "fc00:5::100"],
     flowmon_id: 11, nominal_delay_us: 2000}
  - {name: p2, headend: h1, site: dc2, segments: ["fc00:3::1"], nodes: [1, 3],
     nominal_delay_us: 500, capacity_kbps: 1000000}
weights: {compute: 2, violations_to_resteer: 2}
"""


def test_config_file(tmp_path: FilePath) -> None:
    f = tmp_path / "sched.yaml"
    f.write_text(CONFIG)
    cfg = load_sched_config(f)
    assert [s.name for s in cfg.sites] == ["dc1", "dc2"] and cfg.sites[0].gpu_util == 0.2
    assert cfg.paths[1].nodes == (1, 3) and cfg.paths[0].segments[1] == "fc00:5::100"
    assert cfg.weights.compute == 2 and cfg.weights.violations_to_resteer == 2
    bad = CONFIG.replace('"fc00:3::1"', '"10.0.0.1"')
    f.write_text(bad)
    with pytest.raises(ConfigError, match=r"paths\[1\].segments\[0\]: '10.0.0.1' is not an IPv6"):
        load_sched_config(f)
    f.write_text(CONFIG.replace("site: dc2, segments", "site: dc7, segments"))
    with pytest.raises(ConfigError, match=r"paths\[1\].site: unknown site 'dc7'"):
        load_sched_config(f)
    f.write_text(CONFIG.replace("compute: 2", "compute: -1"))
    with pytest.raises(ConfigError, match="weights.compute: expected a number >= 0"):
        load_sched_config(f)


def test_cli_place_and_compare(tmp_path: FilePath, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "sched.yaml"
    f.write_text(CONFIG)
    rc = sched_main(["place", "--config", str(f), "--job", "j", "--headend", "h1",
                     "--gpus", "2", "--max-latency-us", "1000", "--load", "dc2=0.5,1"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and '"path": "p2"' in out and "delay 2000 µs > SLA 1000 µs" in out
    rc = sched_main(["place", "--config", str(f), "--job", "j", "--headend", "h1",
                     "--telemetry", "p2=abc"])  # fmt: skip
    assert rc == 2 and "--telemetry: 'abc' is not a number" in capsys.readouterr().err
    assert sched_main(["compare", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["distributed"]["avoidable"] > data["centralised"]["avoidable"]
    assert sched_main(["place", "--config", str(tmp_path / "none.yaml"), "--job", "j",
                       "--headend", "h"]) == 2  # fmt: skip
    assert "cannot read" in capsys.readouterr().err


def test_cli_serve_runs_and_stops(tmp_path: FilePath, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "sched.yaml"
    f.write_text(CONFIG)
    log = tmp_path / "decisions.jsonl"
    args = ["serve", "--config", str(f), "--port", "0", "--ifit-port", "0", "--metrics-port",
            "0", "--duration", "0.3", "--decisions", str(log)]  # fmt: skip
    rc = sched_main(args)
    assert rc == 0
    err = capsys.readouterr().err
    assert "scheduler (centralised) API at http://127.0.0.1:" in err
    assert "IFIT collector on udp [::1]:" in err and "/metrics" in err
    assert log.exists()


def test_cli_serve_names_what_is_wrong_with_its_network_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--network or --config, a URL it can use, a network that answers: each refusal is one
    line naming the option or the URL (a closed port on loopback answers 'refused')."""
    assert sched_main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("give --config SCHED.yaml or --network URL")
    assert sched_main(["serve", "--network", "ftp://x", "--port", "0"]) == 2
    assert "--network: 'ftp://x' is not an http:// URL" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connections are refused
        assert sched_main(["serve", "--network", f"http://127.0.0.1:{closed}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"network http://127.0.0.1:{closed}: cannot reach it" in err
