"""A real Prometheus server scrapes a running IFIT collector: per-flow delay, loss and path
changes arrive in Prometheus with the values the IFIT reports sent here imply.

The collector (`CollectorServer`, in this process) receives real UDP datagrams on ::1 and serves
/metrics on 127.0.0.1; Prometheus (Debian package `prometheus`, its own process, its own config,
data directory and free loopback port, scraping every second; never the packaged service nor
port 9090) is queried over its HTTP API. Everything is stopped and removed at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyctl.telemetry import (
    Collector,
    CollectorConfig,
    CollectorServer,
    HopRecord,
    encode_counter_report,
    encode_trace_report,
)

PROMETHEUS = shutil.which("prometheus")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "grafana"


def _prometheus() -> str:
    """Prometheus is not optional: the Makefile installs it (Debian package prometheus)."""
    assert PROMETHEUS is not None, "prometheus is not installed: run `sudo make deps`"
    return PROMETHEUS


WAIT_S = 20.0
FLOWMON = 42
SRC, DST, SPORT, DPORT = "2001:db8:a::1", "2001:db8:b::1", 4000, 5000
HEAD, MID, ALT, TAIL = 11, 12, 13, 14
HEAD_TS = 50_000_000  # µs, the head's record timestamp in every trace report
ONE_WAY_US = 750  # tail timestamp - head timestamp of the last trace report
HEAD_PACKETS, TAIL_PACKETS = 20_000, 19_950  # counted in one colour period: 50 lost, 2500 ppm


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trace_report(path: tuple[int, ...], one_way_us: int) -> bytes:
    """A trace along `path` (head first), hop timestamps evenly spread over `one_way_us`."""
    last = len(path) - 1
    stamps = [HEAD_TS + one_way_us * i // last for i in range(len(path))]
    hops = [HopRecord(node, 64 - i, 1, 2, stamps[i], 0) for i, node in enumerate(path)]
    return encode_trace_report(
        flowmon_id=FLOWMON, colour=0, hops=hops, src=SRC, dst=DST, sport=SPORT, dport=DPORT
    )


def counter_report(node: int, packets: int) -> bytes:
    return encode_counter_report(
        flowmon_id=FLOWMON, colour=1, node_id=node, ts_us=HEAD_TS, packets=packets,
        octets=packets * 100,
    )  # fmt: skip


def send(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("::1", port))


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="icpn-prom-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def collector_server() -> Iterator[CollectorServer]:
    # a long colour period: the loss block closes because every node of the path reported,
    # not on a timer, and the delay figures of the run stay as sent
    server = CollectorServer(
        Collector(CollectorConfig(period_s=3600.0)),
        bind="::1", port=0, http_bind="127.0.0.1", http_port=0,
    )  # fmt: skip
    with server:
        yield server


class Prometheus:
    """A Prometheus process of this test's own; `stop()` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_tcp_port()
        config = workdir / "prom.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: icpn\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = workdir / "prometheus.log"
        binary = _prometheus()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            if e.code == 503:  # still starting: wait_for tries again
                raise
            # a bad query: say which and why
            raise AssertionError(f"{path} {params}: {e.code} {e.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=promql)["result"]
        return result

    def wait_for(self, what: str, cond: Callable[[], bool]) -> None:
        end = time.monotonic() + WAIT_S
        while True:
            assert self.proc.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
            try:
                if cond():
                    return
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening or not ready yet
            assert time.monotonic() < end, f"{what}: not in Prometheus within {WAIT_S} s"
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


Key = frozenset[tuple[str, str]]


def key(**labels: object) -> Key:
    return frozenset((k, str(v)) for k, v in labels.items())


def values(result: list[dict[str, Any]]) -> dict[Key, float]:
    """A query result as {label set (without __name__, job, instance): value}."""
    drop = ("__name__", "job", "instance")
    return {
        frozenset((k, v) for k, v in series["metric"].items() if k not in drop): float(
            series["value"][1]
        )
        for series in result
    }


def test_prometheus_scrapes_flow_delay_loss_and_path_changes(
    workdir: Path, collector_server: CollectorServer
) -> None:
    collector = collector_server.collector
    assert collector_server.http is not None
    target = f"127.0.0.1:{collector_server.http.port}"
    udp_port = collector_server.address[1]

    # Three trace reports: path HEAD-MID-TAIL, then HEAD-ALT-TAIL, then back: 2 path changes.
    # Their one-way delays (tail ts - head ts) are 500, 900 and ONE_WAY_US: last 750, max 900,
    # min 500, avg 2150/3. Then the period's counters of every node of the path: the head
    # counted HEAD_PACKETS and the tail TAIL_PACKETS, so 50 packets are lost (2500 ppm).
    send(
        udp_port,
        [
            trace_report((HEAD, MID, TAIL), 500),
            trace_report((HEAD, ALT, TAIL), 900),
            trace_report((HEAD, MID, TAIL), ONE_WAY_US),
            counter_report(HEAD, HEAD_PACKETS),
            counter_report(MID, HEAD_PACKETS),
            counter_report(TAIL, TAIL_PACKETS),
        ],
    )
    end = time.monotonic() + 5
    while collector.trace_reports + collector.counter_reports < 6:
        assert time.monotonic() < end, "the collector did not receive the reports"
        time.sleep(0.01)

    prom = Prometheus(workdir, target)
    try:
        prom.wait_for(
            "a successful scrape of the collector",
            lambda: values(prom.query('up{job="icpn"}')) == {key(): 1.0},
        )
        labels: dict[str, object] = {
            "flowmon_id": FLOWMON, "src": SRC, "dst": DST, "proto": 17, "sport": SPORT,
            "dport": DPORT,
        }  # fmt: skip
        flow = ",".join(f'{k}="{v}"' for k, v in labels.items())  # a PromQL selector
        delay: dict[Key, float] = {}

        def delays_arrived() -> bool:
            delay.update(values(prom.query(f"icpn_ifit_flow_delay_us{{{flow}}}")))
            return len(delay) == 4

        prom.wait_for("icpn_ifit_flow_delay_us", delays_arrived)
        assert delay == {
            key(**labels, basis="raw", stat="last"): ONE_WAY_US,
            key(**labels, basis="raw", stat="min"): 500,
            key(**labels, basis="raw", stat="max"): 900,
            key(**labels, basis="raw", stat="avg"): round((500 + 900 + ONE_WAY_US) / 3, 3),
        }
        changes = values(prom.query(f"icpn_ifit_flow_path_changes_total{{{flow}}}"))
        assert changes == {key(**labels): 2}
        path = values(prom.query(f"icpn_ifit_flow_path_info{{{flow}}}"))
        assert path == {key(**labels, path=f"{HEAD},{MID},{TAIL}"): 1}
        lost = HEAD_PACKETS - TAIL_PACKETS
        fid = f'{{flowmon_id="{FLOWMON}"}}'
        assert values(prom.query(f"icpn_ifit_loss_packets{fid}")) == {key(flowmon_id=FLOWMON): lost}
        assert values(prom.query(f"icpn_ifit_loss_ppm{fid}")) == {
            key(flowmon_id=FLOWMON): lost * 1e6 / HEAD_PACKETS
        }
        # the ratio a dashboard draws over a run: lost / counted by the head
        ratio = values(
            prom.query(
                f"icpn_ifit_loss_packets_total{fid} / icpn_ifit_loss_head_packets_total{fid}"
            )
        )
        assert ratio == {key(flowmon_id=FLOWMON): lost / HEAD_PACKETS}

        # a later path change reaches Prometheus on a later scrape
        send(udp_port, [trace_report((HEAD, ALT, TAIL), ONE_WAY_US)])
        prom.wait_for(
            "the third path change",
            lambda: (
                values(prom.query(f"icpn_ifit_flow_path_changes_total{{{flow}}}"))
                == {key(**labels): 3}
            ),
        )
        # Prometheus took the whole exposition without complaint
        targets = prom.api("targets")["activeTargets"]
        assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]
        check_dashboard(prom, collector_server.http.url + "/metrics")
    finally:
        prom.stop()
    assert prom.proc.returncode is not None


def check_dashboard(prom: Prometheus, metrics_url: str) -> None:
    """Every query of the Grafana dashboard is valid PromQL for this Prometheus, names only
    series the collector exports, and those of the flow, loss and path panels have data."""
    dashboard = json.loads((DOCS / "icpn-dashboard.json").read_text())
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        exported = set(re.findall(r"^# TYPE (\S+) ", resp.read().decode(), re.M))
    # Grafana's variables as it would expand them: All FlowMonIDs, 4 scrapes, the last minute
    grafana_vars = {"$flowmon_id": ".*", "$__rate_interval": "4s", "$__range": "1m"}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 10
    for expr in exprs:
        assert set(re.findall(r"icpn_[a-z_]+", expr)) <= exported, expr
        for var, value in grafana_vars.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        result = prom.query(expr)  # fails the test on a PromQL error
        if re.match(r"icpn_ifit_(flow_delay|flow_path_info|loss_ppm|loss_packets\{)", expr):
            assert result, f"no data for the dashboard query {expr}"


def test_example_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed: run `sudo make deps` (prometheus)"
    out = subprocess.run(
        [promtool, "check", "config", str(DOCS / "prometheus.yml")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_and_provisioning_files_are_well_formed() -> None:
    """What Grafana needs of the files (no Grafana here; the queries are checked above): unique
    panel ids, panels within the 24-column grid, every $variable declared or Grafana's own,
    every query on the dashboard's data source variable, provisioning YAML Grafana reads."""
    import yaml

    dashboard = json.loads((DOCS / "icpn-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(
        0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels
    )
    declared = {v["name"] for v in dashboard["templating"]["list"]}
    assert declared == {"datasource", "flowmon_id"}
    for p in panels:
        for t in p.get("targets", []):
            used = set(re.findall(r"\$(\w+)", t["expr"]))
            assert used <= declared | {"__rate_interval", "__range"}, t["expr"]
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    provider = yaml.safe_load((DOCS / "provisioning" / "dashboards" / "icpn.yaml").read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"
    source = yaml.safe_load((DOCS / "provisioning" / "datasources" / "icpn.yaml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
