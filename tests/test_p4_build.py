"""p4/build/ is what p4/icpn.p4 compiles to (where p4c exists), and its P4Info has what the
controller resolves by name."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pyctl import constants
from pyctl.p4rt import P4Info
from pyctl.targets.bmv2 import build, codes
from pyctl.toolchain import detect

P4C_REASON = detect().p4c_reason


def test_rendered_constants_are_current() -> None:
    assert (build.BUILD_DIR / "consts.p4").read_text() == constants.p4_header()
    assert (build.BUILD_DIR / "codes.p4").read_text() == codes.p4_header()


def test_committed_build_is_of_the_current_sources() -> None:
    """Runs without p4c: p4/build/sources.sha256 (written by every build) must name the P4
    sources and generated includes as they are now, else p4/build/ is stale."""
    drift = build.source_drift()
    assert drift == [], "; ".join(drift) + " (run `make -C p4` and commit p4/build/)"


def test_a_changed_source_is_caught_without_p4c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check compares with the files themselves: a copy of p4/ with one include edited
    (an added comment line: p4c output unchanged, the source is not) must be reported."""
    copy = tmp_path / "p4"
    shutil.copytree(build.P4_DIR, copy)
    monkeypatch.setattr(build, "P4_DIR", copy)
    monkeypatch.setattr(build, "MAIN", copy / "icpn.p4")
    monkeypatch.setattr(build, "BUILD_DIR", copy / "build")
    monkeypatch.setattr(build, "SOURCES_SHA", copy / "build" / "sources.sha256")
    assert build.source_drift() == []
    with (copy / "include" / "ifit.p4").open("a") as f:
        f.write("// edited\n")
    (copy / "include" / "extra.p4").write_text("// new\n")
    assert build.source_drift() == [
        "p4/include/extra.p4 is new since p4/build/ was compiled",
        "p4/include/ifit.p4 changed since p4/build/ was compiled",
    ]


@pytest.mark.skipif(P4C_REASON is not None, reason=f"p4c: {P4C_REASON}")
def test_committed_artefacts_match_a_fresh_build() -> None:
    with tempfile.TemporaryDirectory(prefix="icpn-p4-") as tmp:
        built = build.compile_p4(Path(tmp))
        assert build.stale_reasons(*built) == []
        assert (Path(tmp) / "sources.sha256").read_text() == build.SOURCES_SHA.read_text()


@pytest.mark.skipif(P4C_REASON is not None, reason=f"p4c: {P4C_REASON}")
def test_stale_artefacts_are_detected() -> None:
    with tempfile.TemporaryDirectory(prefix="icpn-p4-") as tmp:
        built_json, built_info = build.compile_p4(Path(tmp))
        text = built_info.read_text().replace('alias: "fib"', 'alias: "fib2"', 1)
        altered = Path(tmp) / "altered.p4info.txt"
        altered.write_text(text)
        reasons = build.stale_reasons(built_json, altered)
        assert any("icpn.p4info.txt differs" in r for r in reasons)


@pytest.mark.skipif(P4C_REASON is not None, reason=f"p4c: {P4C_REASON}")
def test_includes_compile_in_reverse_order(tmp_path: Path) -> None:
    """Every include includes what it uses: icpn.p4 lists them users after what they use, so
    the reverse order puts every include before what it needs, and still compiles."""
    lines = build.MAIN.read_text().splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith('#include "include/')]
    assert len(at) == len(build.sources()) - 1 and at == list(range(at[0], at[-1] + 1))
    lines[at[0] : at[-1] + 1] = reversed(lines[at[0] : at[-1] + 1])
    reordered = tmp_path / "icpn.p4"
    reordered.write_text("".join(lines))
    p4c = detect().p4c
    assert p4c is not None
    cmd = [p4c, "--arch", "v1model", "--std", "p4-16", "-I", str(build.BUILD_DIR)]
    cmd += ["-I", str(build.P4_DIR), "-o", str(tmp_path / "icpn.json"), str(reordered)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_p4info_has_every_name_the_writer_uses() -> None:
    if not build.P4INFO.exists():
        pytest.skip("p4/build/icpn.p4info.txt not built (p4c absent)")
    info = P4Info.load(build.P4INFO)
    for table in (
        "my_sid",
        "local_sid",
        "fib",
        "port_mac",
        "port_in",
        "policy",
        "policy_bucket",
        "apn_qp",
        "apn_classifier",
        "ifit_flow",
        "ecn_cfg",
        "node_cfg",
        "egress_cfg",
        "elephant_cfg",
        "pfc_cfg",
        "ifit_head_cfg",
        "test_ctx",
        "test_qdepth",
        "test_ingress_queue",
    ):
        info.table(table)
    assert info.table("my_sid").match_fields["sid"].match_type == "lpm"
    assert info.table("fib").match_fields["addr"].bitwidth == 128
    assert info.counters.get("ifit_counts").size == 2 * codes.IFIT_COUNTER_FLOWS
    assert info.table("local_sid").match_fields["sid"].match_type == "lpm"
    assert set(info.packet_meta("packet_in").fields) == {"ingress_port", "reason", "egress_port"}
    assert set(info.packet_meta("packet_out").fields) == {
        "egress_port",
        "in_port",
        "mode",
        "reserved",
    }


def test_p4c_absence_is_reported_in_one_line() -> None:
    if shutil.which("p4c-bm2-ss") or shutil.which("p4c"):
        assert P4C_REASON is None
    else:
        assert P4C_REASON is not None and "\n" not in P4C_REASON
