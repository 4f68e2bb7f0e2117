"""The collector as a service: UDP on ::1 with real datagrams, /metrics and /flows on
127.0.0.1 (random ports), clean shutdown, and `icpn collector` (main) end to end."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from pyctl.errors import ICPNError
from pyctl.telemetry import Collector, CollectorServer, HopRecord, encode_trace_report, serve
from pyctl.telemetry.collector import main


def report(sport: int = 1000) -> bytes:
    hops = [HopRecord(1, 64, 1, 2, 1_000_000, 0), HopRecord(2, 63, 1, 2, 1_000_200, 4)]
    return encode_trace_report(
        flowmon_id=3, colour=0, hops=hops, src="2001:db8::1", dst="2001:db8::2", sport=sport
    )


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def send(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("::1", port))


def test_udp_and_http_end_to_end() -> None:
    collector = Collector()
    server = CollectorServer(collector, bind="::1", port=0, http_bind="127.0.0.1", http_port=0)
    with server:
        host, port = server.address
        assert host == "::1" and port > 0
        assert server.http is not None and server.http.url.startswith("http://127.0.0.1:")
        hostile = [b"", b"\x01", report()[:-3], b"\x02" + report()[1:], bytes(9000)]
        send(port, [report(1), report(2), *hostile, report(1)])
        wait_for(lambda: collector.datagrams == 8)
        assert collector.trace_reports == 3
        assert collector.rejected == {
            "truncated": 2,
            "bad-area-length": 1,
            "bad-version": 1,
            "too-large": 1,
        }
        status, ctype, text = get(server.http.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert "icpn_ifit_datagrams_total 8.0\n" in text
        assert 'icpn_ifit_rejected_total{reason="too-large"} 1.0\n' in text
        status, ctype, body = get(server.http.url + "/flows")
        assert status == 200 and ctype == "application/json"
        flows = json.loads(body)["flows"]
        assert sorted(f["sport"] for f in flows) == [1, 2]
        assert all(f["path"] == [1, 2] and f["delay_us"]["last"] == 200 for f in flows)
        assert get(server.http.url + "/nothing")[0] == 404
        assert get(server.http.url + "/healthz")[:1] == (200,)
        cpu = server.cpu_seconds()
        assert cpu is not None and cpu > 0
        http_port = server.http.port
    assert server.cpu_seconds() is None
    # stopped: the receive thread has ended and both ports are free again
    assert not server._thread.is_alive()
    for family, addr in ((socket.AF_INET6, ("::1", port)), (socket.AF_INET, ("127.0.0.1", 0))):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind(addr)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", http_port))


def test_serve_returns_when_stopped() -> None:
    stop = threading.Event()
    ports: list[int] = []

    def started(server: CollectorServer) -> None:
        ports.append(server.address[1])
        send(server.address[1], [report()])
        wait_for(lambda: server.collector.datagrams == 1)
        stop.set()

    collector = serve(port=0, http_port=None, stop=stop, started=started, duration=10)
    assert collector.trace_reports == 1 and ports


def test_bind_errors_are_clear() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as busy:
        busy.bind(("::1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(ICPNError, match=f"cannot bind UDP ::1 port {port}"):
            CollectorServer(Collector(), bind="::1", port=port, http_port=None)
    with pytest.raises(ICPNError, match="bind"):
        CollectorServer(Collector(), bind="not an address", port=0, http_port=None)


def test_main_runs_and_writes_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ifit.jsonl"
    # pick a free port, release it, and let main bind it
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    args = ["--port", str(port), "--no-http", "--period", "0.2", "--duration", "1.0",
            "--jsonl", str(out), "--report-events", "--clock-offset", "2=100"]  # fmt: skip
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(main(args)))
    runner.start()
    end = time.monotonic() + 5
    while time.monotonic() < end and runner.is_alive():
        send(port, [report()])
        time.sleep(0.1)
        if out.exists() and '"type":"flow"' in out.read_text():
            break
    runner.join(10)
    assert result == [0]
    events = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = {e["type"] for e in events}
    assert {"report", "flow", "link"} <= kinds
    flow = next(e for e in events if e["type"] == "flow")
    hop = flow["hops"][0]["delay_us"]
    assert (hop["basis"], hop["last"]) == ("configured", 100)  # 200 raw - 100 offset of node 2
    err = capsys.readouterr().err
    assert f"udp [::1]:{port}" in err and "IFIT collector stopped" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clock-offset", "x"], "--clock-offset: 'x' is not KEY=VALUE"),
        (["--clock-offset", "a=5"], "--clock-offset: node id 'a' is not an integer"),
        (["--trace-type", "0x000002"], "trace_type"),
        (["--link-floor", "1=5"], "--link-floor: '1' is not A-B"),
        (["--allow", "nope"], "--allow: 'nope' is not a prefix"),
        (["--period", "0"], "period_s: invalid value 0.0"),
        (["--counters", "per-period", "--max-flows", "0"], "max_flows"),
        (["--bind", "256.1.1.1"], "bind"),
    ],
)
def test_main_reports_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--no-http", "--port", "0", "--duration", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icpn collector: error:") and message in err
