"""`icpn run --web`: the live page in a real (headless Chromium) browser during a real run, then
the run's report.html opened from disk with the browser offline.

What is asserted is what a person sees: the node names drawn in the graph, a link's rate label
changing while traffic runs, the flow's traced path, and the same nodes in report.html.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctl.model.topology import load_topology
from pyctl.net.emulation import cleanup_stale
from pyctl.net.scenario import EBPF_SCALE
from pyctl.targets.ebpf import EBPFDataPlane

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

TOPO = Path(__file__).resolve().parent.parent / "topologies" / "minimal.yaml"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (icpn run builds namespaces)"
    if CHROMIUM is None or CHROMEDRIVER is None:
        return "needs the Debian packages chromium and chromium-driver"
    return EBPFDataPlane.unavailable()


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture
def browser() -> Iterator[object]:
    opts = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(arg)
    # the driver given by path: Selenium Manager must not try to download one
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = {line.split(": ")[1].split("@")[0] for line in out.splitlines()}
    return {n for n in names if re.match(r"ic[0-9a-f]{3}", n)}  # what emulations create


def _until(what: str, fn: object, timeout_s: float = 40.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()  # type: ignore[operator]
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"the page never showed {what}")


def _texts(driver: object, css: str) -> list[str]:
    """The text of every element matching `css`, read in one go in the page: the page redraws
    twice a second, so an element found first and read later may be gone (stale)."""
    js = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim())"
    texts: list[str] = driver.execute_script(js, css)  # type: ignore[attr-defined]
    return texts


def test_live_view_and_report_html(tmp_path: Path, browser: object) -> None:
    before = _root_links()
    topo = load_topology(TOPO)
    names = {n.name for n in topo.nodes}  # what the graph must draw, from the YAML itself
    (flow,) = topo.flows
    # minimal.yaml chains ha - pe1 - pe2 - hb: the one path IFIT can trace for `probe`
    expected_path = f"{flow.src} → pe1 → pe2 → {flow.dst}"
    argv = [sys.executable, "-m", "pyctl.cli", "run", str(TOPO), "--dataplane", "ebpf"]
    argv += ["--seconds", "3", "--no-cli", "--runs", str(tmp_path), "--web", "127.0.0.1:0"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )
    out: list[str] = []
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            out.append(line)
            m = re.search(r"live view: (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "".join(out)
        drv: object = browser
        drv.get(url)  # type: ignore[attr-defined]
        _until("every node", lambda: names <= set(_texts(drv, "svg .node-label")))
        # the rate label of the first link, read until it shows traffic: the flow sends
        # rate_mbit scaled by icpn run's eBPF default (EBPF_SCALE) into ha-pe1, which must read
        # about that many Mbit/s (frame headers add a little, never twice as much)
        first = _texts(drv, 'svg .link-labels[data-link="ha-pe1"] .link-rate')[0]
        want = flow.rate_mbit * EBPF_SCALE

        def busy() -> float | None:
            (label,) = _texts(drv, 'svg .link-labels[data-link="ha-pe1"] .link-rate')
            m = re.match(r"([\d.]+) Mbit/s", label)
            return float(m.group(1)) if m and float(m.group(1)) > 0.5 * want else None

        seen = _until(f"ha-pe1 carrying about {want} Mbit/s", busy)
        assert isinstance(seen, float) and seen < 2 * want
        second = _texts(drv, 'svg .link-labels[data-link="ha-pe1"] .link-rate')[0]
        assert second != first  # the page updated without a reload
        path = f'.flow[data-flow="{flow.name}"] .path'
        _until(f"the traced path {expected_path}", lambda: _texts(drv, path) == [expected_path])
        # while a phase runs, the flow's row for it shows what has arrived so far: about the
        # rate it sends (the UDP payload's share of the link's figure above), not 0
        live_row = f'.flow[data-flow="{flow.name}"] tr.live td'

        def receiving() -> list[str] | None:
            cells = _texts(drv, live_row)
            return cells if len(cells) >= 2 and float(cells[1] or 0) > 0.5 * want else None

        cells = _until("the running phase's received rate", receiving)
        assert isinstance(cells, list) and cells[0].endswith("(running)")
        assert float(cells[1]) < 1.5 * want
        drv.save_screenshot(str(next(tmp_path.iterdir()) / "live.png"))  # type: ignore[attr-defined]
        rest, _ = proc.communicate(timeout=120)
        out.append(rest)
        assert proc.returncode == 0, "".join(out)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # tears the network down
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        cleanup_stale()

    assert _root_links() <= before  # the run's network is gone
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "live.png").stat().st_size > 10_000
    report = run_dir / "report.html"
    html = report.read_text()
    # self-contained: nothing fetched from anywhere (the plots are data: URIs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?https?:""", html)
    drv.set_network_conditions(offline=True, latency=0, throughput=0)  # type: ignore[attr-defined]
    drv.get(report.as_uri())  # type: ignore[attr-defined]
    _until("every node in report.html", lambda: names <= set(_texts(drv, "svg .node-label")))
    assert _texts(drv, "#status") == ["finished"]
    assert _texts(drv, f'.flow[data-flow="{flow.name}"] .path') == [expected_path]
    plots = drv.find_elements(By.CSS_SELECTOR, "#plots img")  # type: ignore[attr-defined]
    assert plots and all(p.get_attribute("src").startswith("data:image/png") for p in plots)
    assert all(drv.execute_script("return arguments[0].naturalWidth", p) > 0 for p in plots)  # type: ignore[attr-defined]
