"""The conformance vectors on every data plane available here, and tests of the runner itself."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyctl import conformance
from pyctl.conformance import (
    Matrix,
    Vector,
    VectorResult,
    class_support,
    field_diff,
    format_table,
    load_vectors,
    run_matrix,
    run_vector,
)
from pyctl.errors import ConfigError, DataPlaneUnavailable
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets import DATAPLANES, dataplane_class
from pyctl.targets.base import DataPlane, Output, Result

ROOT = Path(__file__).parent / "vectors"
GROUPS = ("srv6", "validation", "apn", "hashing", "ifit", "congestion", "forwarding")
# Constructor arguments for planes whose test instances must use the test namespace prefix.
PLANE_KWARGS: dict[str, dict[str, Any]] = {"kernel": {"prefix": "icpnt-k"}}
PLANE_MARKS: dict[str, list[pytest.MarkDecorator]] = {
    "kernel": [pytest.mark.root, pytest.mark.kernel],
    "ebpf": [pytest.mark.root],
    "bmv2": [pytest.mark.bmv2],
}


def _load_all() -> tuple[list[Vector], ConfigError | None]:
    try:
        return load_vectors(ROOT), None
    except ConfigError as e:
        return [], e


VECTORS, LOAD_ERROR = _load_all()


def _cases() -> list[Any]:
    """(vector, plane) for every plane and vector. A pair a plane cannot run here (an absent
    plane, a feature it declares unsupported) is still a case: it skips with the plane's reason,
    so the count of skips is visible in every run."""
    cases = []
    for name in DATAPLANES:
        try:
            cls: type[DataPlane] | None = dataplane_class(name)
            absent = cls.unavailable() if cls is not None else None
        except ImportError as e:
            cls, absent = None, f"cannot import the data plane: {e}"
        for vec in VECTORS:
            reason = absent or (class_support(cls, vec.covers) if cls is not None else None)
            marks = list(PLANE_MARKS.get(name, []))
            if reason is not None:
                marks.append(pytest.mark.skip(reason=f"{name}: {reason}"))
            cases.append(pytest.param(vec, name, id=f"{name}:{vec.rel}", marks=marks))
    return cases


def test_vectors_load() -> None:
    if LOAD_ERROR is not None:
        raise LOAD_ERROR
    groups = {v.rel.split("/")[0] for v in VECTORS}
    assert set(GROUPS) <= groups
    assert len(VECTORS) >= 45


@pytest.mark.parametrize(("vec", "plane"), _cases())
def test_vector(vec: Vector, plane: str) -> None:
    kwargs = PLANE_KWARGS.get(plane, {})
    factory: Callable[[], DataPlane] | None = None
    if kwargs:

        def factory() -> DataPlane:
            return dataplane_class(plane)(**kwargs)

    result = run_vector(vec, plane, factory=factory)
    if result.status == "skip":
        pytest.skip(f"{plane}: {result.detail}")
    if result.status not in ("pass", "differs"):  # differs: checked to still differ
        pytest.fail(f"{vec.path} ({vec.spec})\n{result.detail}", pytrace=False)


# Planes that need an optional part (BMv2, a kernel option); the others must run on every machine.
OPTIONAL_PLANES = ("kernel", "bmv2")


@pytest.mark.parametrize("plane", list(DATAPLANES))
def test_dataplane_is_present(plane: str) -> None:
    """reference and eBPF run everywhere; the kernel and BMv2 planes may be absent (an optional
    part is missing): then one line says why."""
    reason = dataplane_class(plane).unavailable()
    if reason is not None and plane in OPTIONAL_PLANES:
        pytest.skip(f"{plane}: {reason}")
    assert reason is None, f"{plane}: {reason}"


def test_reference_runs_every_vector() -> None:
    """The reference model claims every feature: no vector may be skipped on it."""
    cls = dataplane_class("reference")
    assert cls.unavailable() is None
    skipped = [v.rel for v in VECTORS if class_support(cls, v.covers) is not None]
    assert skipped == []


# ---------------------------------------------------------------------------------------------
# The runner, against fake data planes registered for the test


class EchoPlane(DataPlane):
    """Sends every frame back out of port 2 unchanged; drops frames on port 3 as 'no-route'."""

    name = "echo"

    def configure(self, node: NodeConfig) -> None:
        self.node = node

    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        if ctx.in_port == 3:
            return Result(drop="no-route")
        return Result(outputs=[Output(2, frame)])


class NoPFCPlane(EchoPlane):
    @classmethod
    def supports(cls, covers: list[str]) -> str | None:
        return "no PFC here" if "PFC" in covers else None


class GonePlane(EchoPlane):
    @classmethod
    def unavailable(cls) -> str | None:
        return "needs a unicorn"


class CrashPlane(EchoPlane):
    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        raise RuntimeError("boom")


class LackingPlane(EchoPlane):
    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        raise DataPlaneUnavailable("this SID needs a VRF device")


class VagueDropPlane(EchoPlane):
    """Cannot say why it drops, and zeroes byte 21 (the IPv6 hop limit) by design."""

    exact_drop_reasons = False

    def process(self, frame: bytes, ctx: PacketContext) -> Result:
        if ctx.in_port == 3:
            return Result(drop="dropped-somehow")
        out = bytearray(frame)
        out[21] = 0
        return Result(outputs=[Output(2, bytes(out))])

    @staticmethod
    def comparable(frame: bytes, node: NodeConfig) -> bytes:
        return frame[:21] + b"\x00" + frame[22:]


@pytest.fixture
def fake_planes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, cls in (
        ("echo", "EchoPlane"),
        ("nopfc", "NoPFCPlane"),
        ("gone", "GonePlane"),
        ("crash", "CrashPlane"),
        ("lacking", "LackingPlane"),
        ("vague", "VagueDropPlane"),
    ):
        monkeypatch.setitem(DATAPLANES, name, f"{__name__}:{cls}")


NODE_FIELDS = """name: T
role: transit
node_id: 1
ports:
  - {index: 1, mac: "02:00:00:00:00:01"}
  - {index: 2, mac: "02:00:00:00:00:02"}
  - {index: 3, mac: "02:00:00:00:00:03"}
"""
NODE = "\nnode:\n" + textwrap.indent(NODE_FIELDS, "  ")
PKT = (
    "Ether(src='02:00:00:00:00:09', dst='02:00:00:00:00:01')"
    " / IPv6(src='2001:db8::1', dst='2001:db8::2', hlim={hlim}) / UDP(sport=1, dport=2)"
)


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _vector_text(name: str, expect_hlim: int, covers: str = "forwarding") -> str:
    return (
        f"name: {name}\ncovers: [{covers}]\nspec: test\n"
        + NODE
        + f"""steps:
  - in_port: 1
    packet: "{PKT.format(hlim=64)}"
    expect:
      - port: 2
        packet: "{PKT.format(hlim=expect_hlim)}"
  - in_port: 3
    packet: "{PKT.format(hlim=64)}"
    drop: no-route
    expect: []
"""
    )


def test_matching_vector_passes(tmp_path: Path, fake_planes: None) -> None:
    _write(tmp_path, "g/ok.yaml", _vector_text("ok", 64))
    (vec,) = load_vectors(tmp_path)
    assert run_vector(vec, "echo") == VectorResult("ok", "echo", "pass", "")


def test_wrong_expected_packet_is_a_fail_with_a_field_diff(
    tmp_path: Path, fake_planes: None
) -> None:
    _write(tmp_path, "g/wrong.yaml", _vector_text("wrong", 63))
    (vec,) = load_vectors(tmp_path)
    result = run_vector(vec, "echo")
    assert result.status == "FAIL"
    assert "step 0 (in_port 1)" in result.detail
    assert (
        "steps[0].expect[0]: expected on port 2, got on port 2 a different frame" in result.detail
    )
    assert "IPv6.hlim: expected 63, got 64" in result.detail
    assert "first differing byte at offset 21: expected 0x3f, got 0x40" in result.detail
    assert "(the 1 later step(s) were not run)" in result.detail


def test_drop_and_output_mismatches_are_named(tmp_path: Path, fake_planes: None) -> None:
    text = (
        "name: drops\ncovers: [forwarding]\nspec: test\n"
        + NODE
        + f"""steps:
  - in_port: 1
    packet: "{PKT.format(hlim=64)}"
    drop: hop-limit
    expect: []
"""
    )
    _write(tmp_path, "g/d.yaml", text)
    (vec,) = load_vectors(tmp_path)
    detail = run_vector(vec, "echo").detail
    assert "expected drop 'hop-limit', got no drop" in detail
    assert "unexpected output on port 2" in detail


def test_skip_reasons(tmp_path: Path, fake_planes: None) -> None:
    _write(tmp_path, "g/p.yaml", _vector_text("pfc", 64, covers="PFC, forwarding"))
    (vec,) = load_vectors(tmp_path)
    assert run_vector(vec, "nopfc") == VectorResult("pfc", "nopfc", "skip", "no PFC here")
    assert run_vector(vec, "gone") == VectorResult("pfc", "gone", "skip", "needs a unicorn")
    crash = run_vector(vec, "crash")
    assert crash.status == "FAIL"
    assert "process raised RuntimeError: boom" in crash.detail
    lacking = run_vector(vec, "lacking")
    assert lacking == VectorResult(
        "pfc", "lacking", "skip", "step 0 (in_port 1): this SID needs a VRF device"
    )


def test_optional_hooks_relax_drop_reason_and_blank_bytes(
    tmp_path: Path, fake_planes: None
) -> None:
    _write(tmp_path, "g/ok.yaml", _vector_text("ok", 64))
    (vec,) = load_vectors(tmp_path)
    assert run_vector(vec, "vague").status == "pass"
    # without the hooks the same outputs fail on the hop limit and the drop reason
    vague = dataplane_class("vague")
    result = conformance.compare_step(
        vec.steps[0], vague().process(vec.steps[0].frame, vec.steps[0].context())
    )
    assert any("IPv6.hlim: expected 64, got 0" in p for p in result)
    dropped = Result(drop="dropped-somehow")
    assert conformance.compare_step(vec.steps[1], dropped) == [
        "expected drop 'no-route', got drop 'dropped-somehow'"
    ]
    assert conformance.compare_step(vec.steps[1], dropped, exact_drop=False) == []


def test_bad_field_names_file_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "g/bad.yaml", _vector_text("bad", 64).replace("in_port: 3", "in_port: 9")
    )
    with pytest.raises(ConfigError) as err:
        load_vectors(tmp_path)
    assert str(path) in str(err.value)
    assert "steps[1].in_port" in str(err.value)
    assert "port 9 is not one of the node's ports [1, 2, 3]" in str(err.value)


def test_bad_packet_expression_names_file_step_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "g/bad.yaml", _vector_text("bad", 64).replace("hlim=64)", "hlim=64) / Nope()", 1)
    )
    with pytest.raises(ConfigError) as err:
        load_vectors(tmp_path)
    message = str(err.value)
    assert str(path) in message
    assert "steps[0].packet: cannot evaluate" in message
    assert "Nope" in message


def test_bad_node_field_and_unknown_drop_reason(tmp_path: Path) -> None:
    _write(tmp_path, "g/mac.yaml", _vector_text("mac", 64).replace('"02:00:00:00:00:02"', '"zz"'))
    with pytest.raises(ConfigError, match=r"node\.ports\[1\]\.mac: 'zz' is not a MAC address"):
        load_vectors(tmp_path)
    (tmp_path / "g/mac.yaml").unlink()
    _write(
        tmp_path, "g/drop.yaml", _vector_text("drop", 64).replace("drop: no-route", "drop: lost")
    )
    with pytest.raises(ConfigError, match=r"steps\[1\]\.drop: 'lost' is not a drop reason"):
        load_vectors(tmp_path)


def test_duplicate_names_and_unknown_features_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a/one.yaml", _vector_text("same", 64))
    _write(tmp_path, "b/two.yaml", _vector_text("same", 64))
    with pytest.raises(ConfigError, match="'same' is already the name of"):
        load_vectors(tmp_path)
    (tmp_path / "b/two.yaml").unlink()
    _write(tmp_path, "b/three.yaml", _vector_text("three", 64, covers="Teleport"))
    with pytest.raises(ConfigError, match=r"covers\[0\]: 'Teleport' is not a feature"):
        load_vectors(tmp_path)


def test_shared_node_file_with_overrides(tmp_path: Path, fake_planes: None) -> None:
    _write(tmp_path, "nodes/t.yaml", NODE_FIELDS)
    text = _vector_text("shared", 64).replace(
        NODE, "\nnode: nodes/t.yaml\nnode_overrides: {node_id: 7}\n"
    )
    _write(tmp_path, "g/s.yaml", text)
    (vec,) = load_vectors(tmp_path)
    assert vec.node.node_id == 7 and len(vec.node.ports) == 3
    assert run_vector(vec, "echo").status == "pass"


def test_select_by_name_path_and_feature() -> None:
    assert [v.rel for v in load_vectors(ROOT, "srv6/end-x-psp")] == ["srv6/end-x-psp"]
    assert [v.rel for v in load_vectors(ROOT, "srv6/end-x")] == ["srv6/end-x-psp", "srv6/end-x"]
    assert [v.name for v in load_vectors(ROOT, "srv6-end-x")] == ["srv6-end-x-psp", "srv6-end-x"]
    pfc = load_vectors(ROOT, "PFC")
    assert pfc and all("PFC" in v.covers for v in pfc)
    assert {v.rel for v in load_vectors(ROOT, "ifit/*")} == {
        v.rel for v in VECTORS if v.rel.startswith("ifit/")
    }


def test_field_diff_walks_layers_and_options() -> None:
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, PadN
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    def frame(optdata: bytes, hlim: int) -> bytes:
        return bytes(
            Ether()
            / IPv6(hlim=hlim)
            / IPv6ExtHdrHopByHop(options=[PadN(optdata=optdata)])
            / UDP()
            / Raw(b"x")
        )

    lines = field_diff(frame(b"\x00\x00\x00\x00", 5), frame(b"\x00\x01\x00\x00", 6))
    assert lines[0] == "IPv6.hlim: expected 5, got 6"
    assert lines[1] == (
        "IPv6ExtHdrHopByHop.options[0].PadN.optdata: expected 00000000, got 00010000"
        " (first difference at byte 1 of the field)"
    )
    assert lines[-1].startswith("first differing byte at offset 21")
    assert field_diff(b"\x01\x02", b"\x01\x03")[-1].startswith("first differing byte at offset 1")


def test_format_table_and_summary(tmp_path: Path, fake_planes: None) -> None:
    _write(tmp_path, "g/ok.yaml", _vector_text("ok", 64))
    _write(tmp_path, "g/wrong.yaml", _vector_text("wrong", 63))
    vectors = load_vectors(tmp_path)
    matrix = run_matrix(vectors, ["echo", "gone"])
    assert isinstance(matrix, Matrix)
    table = format_table(matrix).splitlines()
    assert table[0].split() == ["vector", "echo", "gone"]
    assert table[2].split() == ["g/ok", "pass", "skip", "[1]"]
    assert table[3].split() == ["g/wrong", "FAIL", "skip", "[1]"]
    assert table[4] == "[1] skip: gone: needs a unicorn"
    assert table[-1] == "vectors: 1 passed, 1 failed, 2 skipped"


def test_main_exit_codes(
    tmp_path: Path, fake_planes: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "g/ok.yaml", _vector_text("ok", 64))
    assert conformance.main(["echo"], tmp_path, None, False) == 0
    _write(tmp_path, "g/wrong.yaml", _vector_text("wrong", 63))
    assert conformance.main(["echo"], tmp_path, None, True) == 1
    out = capsys.readouterr().out
    assert "FAIL g/wrong on echo" in out and "IPv6.hlim: expected 63, got 64" in out
    assert out.rstrip().endswith("vectors: 1 passed, 1 failed, 0 skipped")
    assert conformance.main(["echo"], tmp_path, "ok", False) == 0
    assert conformance.main(["nosuch"], tmp_path, None, False) == 2
    assert conformance.main(["echo"], tmp_path, "nothing-matches", False) == 2
    _write(tmp_path, "g/bad.yaml", "name: bad\n")
    assert conformance.main(["echo"], tmp_path, None, False) == 2
    assert "error:" in capsys.readouterr().err


def _known(plane: str, step: int, hlim: int) -> str:
    """A documented difference: at `step` the plane forwards on port 2 with hop limit `hlim`."""
    return f"""known_differences:
  {plane}:
    why: 'echo keeps the hop limit (docs/x.md)'
    steps:
      - step: {step}
        expect:
          - port: 2
            packet: "{PKT.format(hlim=hlim)}"
"""


def test_known_differences_are_held_strictly(tmp_path: Path, fake_planes: None) -> None:
    """A documented difference shows as `differs` only while the plane differs exactly as
    written: the same outputs at the same step, and SPEC everywhere else."""
    # SPEC (the vector) wants hop limit 63 at step 0; echo returns 64: documented as such.
    _write(tmp_path, "g/differs.yaml", _known("echo", 0, 64) + _vector_text("differs", 63))
    # echo agrees with SPEC (64 -> 64), so a documented difference there no longer holds
    _write(tmp_path, "g/agrees.yaml", _known("echo", 0, 64) + _vector_text("agrees", 64))
    # echo differs from SPEC (63), but not the documented way (62)
    _write(tmp_path, "g/other.yaml", _known("echo", 0, 62) + _vector_text("other", 63))
    by_name = {v.name: v for v in load_vectors(tmp_path)}
    differs = run_vector(by_name["differs"], "echo")
    assert differs == VectorResult("differs", "echo", "differs", differs.detail)
    assert "echo keeps the hop limit" in differs.detail
    gone = run_vector(by_name["agrees"], "echo")
    assert gone.status == "FAIL" and "no longer holds" in gone.detail
    other = run_vector(by_name["other"], "echo")
    assert other.status == "FAIL" and "not as documented" in other.detail
    assert "IPv6.hlim: expected 62, got 64" in other.detail
    matrix = run_matrix([by_name["differs"]], ["echo"])
    assert "differs [1]" in format_table(matrix)
    assert "(1 documented differences)" in format_table(matrix)
    bad = _known("nope", 0, 64) + _vector_text("v", 64)
    _write(tmp_path / "bad", "g/v.yaml", bad)
    with pytest.raises(ConfigError, match="'nope' is not a data plane"):
        load_vectors(tmp_path / "bad")
    _write(tmp_path / "bad2", "g/v.yaml", _known("echo", 5, 64) + _vector_text("v", 64))
    with pytest.raises(ConfigError, match=r"known_differences\.echo\.steps\[0\]\.step"):
        load_vectors(tmp_path / "bad2")


def test_totals_per_plane_add_up_to_the_vectors(tmp_path: Path, fake_planes: None) -> None:
    """Under the table, one line per plane counts pass / differs / skip / FAIL; each line adds
    up to the number of vector files (here 4 files: 1 pass, 1 differs, 1 FAIL, 1 skip on nopfc,
    counted by hand from what each file asks of echo)."""
    _write(tmp_path, "g/ok.yaml", _vector_text("ok", 64))
    _write(tmp_path, "g/differs.yaml", _known("nopfc", 0, 64) + _vector_text("differs", 63))
    _write(tmp_path, "g/wrong.yaml", _vector_text("wrong", 63))
    _write(tmp_path, "g/pfc.yaml", _vector_text("pfc", 64, covers="PFC, forwarding"))
    matrix = run_matrix(load_vectors(tmp_path), ["nopfc", "gone"])
    lines = format_table(matrix).splitlines()
    assert "nopfc  1 pass / 1 differs / 1 skip / 1 FAIL  (of 4 vectors)" in lines
    assert "gone   0 pass / 0 differs / 4 skip / 0 FAIL  (of 4 vectors)" in lines
