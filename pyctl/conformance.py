"""Conformance vectors: load `tests/vectors/**/*.yaml`, run them on data planes, report a matrix.

A vector is a node configuration plus steps (input frame + context -> expected outputs or drop),
written by hand from SPEC.md and docs/pipeline.md. The format is documented in docs/vectors.md.
Every data plane that is available here runs every vector it supports; outputs are compared as a
multiset of (port, bytes), and a mismatch is reported field by field.
"""

from __future__ import annotations

import builtins
import dataclasses
import fnmatch
import inspect
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl.errors import ConfigError, DataPlaneUnavailable
from pyctl.model.fields import Field
from pyctl.model.load import node_from_dict, node_from_field
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets import DATAPLANES, dataplane_class, open_dataplane
from pyctl.targets.base import FEATURES, DataPlane, Result
from pyctl.targets.reasons import DROP_CODES

# The drop reasons docs/pipeline.md defines (one table for every data plane); a vector naming
# another one has a typo.
DROP_REASONS: tuple[str, ...] = tuple(DROP_CODES)

NODES_DIR = "nodes"  # shared node files under the vector root; not vectors themselves

_VECTOR_FIELDS = (
    "name",
    "covers",
    "spec",
    "description",
    "node",
    "node_overrides",
    "steps",
    "known_differences",
)
_STEP_FIELDS = (
    "note",
    "in_port",
    "time_us",
    "egress_queue_bytes",
    "egress_queue_packets",
    "ingress_queue_bytes",
    "rand32",
    "packet",
    "hex",
    "expect",
    "drop",
)
_U32 = 0xFFFFFFFF

# Names a packet expression may use besides scapy's and pyctl.packets' (no I/O, no imports).
_SAFE_BUILTINS: dict[str, object] = {
    n: getattr(builtins, n)
    for n in (
        "abs",
        "bytearray",
        "bytes",
        "dict",
        "hex",
        "int",
        "len",
        "list",
        "max",
        "min",
        "range",
        "reversed",
        "str",
        "sum",
        "tuple",
    )
}


@dataclass(frozen=True)
class ExpectedOutput:
    port: int
    frame: bytes
    where: str  # e.g. "steps[1].expect[0]", for messages


@dataclass(frozen=True)
class Step:
    index: int
    in_port: int
    frame: bytes
    expect: tuple[ExpectedOutput, ...]
    drop: str | None = None
    time_us: int = 0
    egress_queue_bytes: tuple[tuple[int, int], ...] = ()
    egress_queue_packets: tuple[tuple[int, int], ...] = ()
    ingress_queue_bytes: tuple[tuple[tuple[int, int], int], ...] = ()
    rand32: int = 0
    note: str | None = None

    def context(self) -> PacketContext:
        """A fresh context (the data plane may keep a reference; vectors stay immutable)."""
        return PacketContext(
            in_port=self.in_port,
            time_us=self.time_us,
            egress_queue_bytes=dict(self.egress_queue_bytes),
            egress_queue_packets=dict(self.egress_queue_packets),
            ingress_queue_bytes=dict(self.ingress_queue_bytes),
            rand32=self.rand32,
        )


@dataclass(frozen=True)
class Difference:
    """What one data plane is documented to do instead of SPEC, held strictly: at each listed
    step the plane must produce exactly the alternative outcome (same drop, same output bytes);
    at every other step it must match SPEC."""

    plane: str
    why: str  # an RFC-backed note pointing at docs/
    steps: tuple[Step, ...]  # alternative outcomes (drop / expect), by step index

    def at(self, index: int) -> Step | None:
        return next((s for s in self.steps if s.index == index), None)


@dataclass(frozen=True)
class Vector:
    name: str
    covers: tuple[str, ...]
    spec: str
    node: NodeConfig
    steps: tuple[Step, ...]
    path: Path  # the vector file
    rel: str  # path relative to the vector root, without .yaml (e.g. "srv6/end-basic")
    description: str = ""
    # documented differences of some data planes; held strictly: the plane must still differ
    # exactly as written, or the vector fails so the note gets mended or removed
    differences: tuple[Difference, ...] = ()

    def difference(self, plane: str) -> Difference | None:
        return next((d for d in self.differences if d.plane == plane), None)


@dataclass(frozen=True)
class VectorResult:
    vector: str
    dataplane: str
    status: str  # "pass" | "FAIL" | "skip" | "differs" (a documented difference, still true)
    detail: str = ""  # the diff for FAIL, the reason for skip or differs


@dataclass
class Matrix:
    vectors: list[Vector]
    dataplanes: list[str]
    results: dict[tuple[str, str], VectorResult] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results.values() if r.status == status)

    @property
    def failed(self) -> bool:
        return self.count("FAIL") > 0


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class _Loader:
    """State of one `load_vectors` call: the packet namespace and the node files already read."""

    root: Path
    namespace: dict[str, Any] | None = None
    packets_import_error: str | None = None
    node_files: dict[Path, Field] = field(default_factory=dict)

    def names(self) -> dict[str, Any]:
        if self.namespace is None:
            self.namespace, self.packets_import_error = _packet_namespace()
        return self.namespace


def _packet_namespace() -> tuple[dict[str, Any], str | None]:
    """scapy.all's names plus pyctl.packets' (when it imports), with a few safe builtins."""
    import scapy.all as scapy_all

    ns: dict[str, Any] = {k: getattr(scapy_all, k) for k in dir(scapy_all) if not k[0] == "_"}
    error = None
    try:
        import pyctl.packets as packets
    # A half-written pyctl.packets may fail with anything; vectors written with scapy alone must
    # still run, and a vector that needs its names is told why they are missing.
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
    else:
        exported = getattr(packets, "__all__", None) or [n for n in dir(packets) if n[0] != "_"]
        ns.update({n: getattr(packets, n) for n in exported if hasattr(packets, n)})
    ns["__builtins__"] = _SAFE_BUILTINS
    return ns, error


def _read_yaml(path: Path) -> Field:
    """The document at `path` as a `Field` (errors then carry file, line and field)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(str(path), f"cannot read: {e.strerror}") from None
    return Field.from_yaml(text, str(path))


def _vector_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*.yaml") if p.is_file())
    return [p for p in files if p.relative_to(root).parts[0] != NODES_DIR]


def _selected(select: str | None, name: str, rel: str, covers: list[Any]) -> bool:
    """`select` is a glob (or substring) of the name or relative path, or a covered feature."""
    if select is None:
        return True
    if select in covers:
        return True
    for text in (name, rel):
        if fnmatch.fnmatchcase(text, select) or (
            not any(c in select for c in "*?[") and select in text
        ):
            return True
    return False


def load_vectors(root: Path, select: str | None = None) -> list[Vector]:
    """Load every vector under `root` (except `root/nodes/`), optionally only those selected.

    Raises `ConfigError` naming the file and field of the first bad vector.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(str(root), "is not a directory of vectors")
    loader = _Loader(root)
    seen: dict[str, Path] = {}
    vectors = []
    for path in _vector_files(root):
        f = _read_yaml(path)
        f.mapping(_VECTOR_FIELDS)
        name = f.child("name").string()
        if name in seen:
            raise f.child("name").fail(f"{name!r} is already the name of {seen[name]}")
        seen[name] = path
        rel = str(path.relative_to(root).with_suffix(""))
        covers_raw = f.child("covers").value
        covers_list = covers_raw if isinstance(covers_raw, list) else []
        if _selected(select, name, rel, covers_list):
            vectors.append(_vector(loader, f, path, rel))
    return vectors


def _vector(loader: _Loader, f: Field, path: Path, rel: str) -> Vector:
    covers = f.child("covers").listed(lambda c: c.string())
    if not covers:
        raise f.child("covers").fail("must list at least one feature")
    for i, c in enumerate(covers):
        if c not in FEATURES:
            raise (
                f.child("covers")
                .child(i)
                .fail(f"{c!r} is not a feature (known: {', '.join(FEATURES)})")
            )
    node = _node(loader, f, path)
    steps = tuple(_step(loader, s, i, node) for i, s in enumerate(f.child("steps").items()))
    if not steps:
        raise f.child("steps").fail("must have at least one step")
    diff_f = f.child("known_differences")
    differences = tuple(
        _difference(loader, diff_f.child(str(k)), str(k), node, steps) for k in diff_f.mapping()
    )
    return Vector(
        differences=differences,
        name=f.child("name").string(),
        covers=covers,
        spec=f.child("spec").string(),
        node=node,
        steps=steps,
        path=path,
        rel=rel,
        description=f.child("description").string(""),
    )


def _difference(
    loader: _Loader, f: Field, plane: str, node: NodeConfig, steps: tuple[Step, ...]
) -> Difference:
    if plane not in DATAPLANES:
        raise f.fail(f"{plane!r} is not a data plane ({', '.join(DATAPLANES)})")
    f.mapping(("why", "steps"))
    alternatives: list[Step] = []
    for sf in f.child("steps").items():
        sf.mapping(("step", "drop", "expect", "note"))
        index = sf.child("step").integer(0, len(steps) - 1)
        if any(a.index == index for a in alternatives):
            raise sf.child("step").fail(f"step {index} is listed twice")
        spec_step = steps[index]
        drop, expect = _outcome(loader, sf, node)
        alternatives.append(dataclasses.replace(spec_step, drop=drop, expect=expect))
    if not alternatives:
        raise f.child("steps").fail("must list the steps where the plane differs, and how")
    return Difference(plane, f.child("why").string(), tuple(alternatives))


def _deep_merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) is replaced by `over`."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(base.get(k), v) if k in base else v
        return out
    return over


def _node(loader: _Loader, f: Field, path: Path) -> NodeConfig:
    nf = f.child("node")
    overrides = f.child("node_overrides")
    if isinstance(nf.value, str):
        node_path = (loader.root / nf.value).resolve()
        if not node_path.is_file():
            raise nf.fail(f"{nf.value!r} is not a file under {loader.root}")
        if node_path not in loader.node_files:
            loader.node_files[node_path] = _read_yaml(loader.root / nf.value)
        shared = loader.node_files[node_path]
        if not overrides.present():
            return node_from_field(shared)
        overrides.mapping()
        merged = _deep_merge(shared.value, overrides.value)
        return node_from_dict(merged, f"{path} (node {nf.value} + node_overrides)")
    if not nf.present():
        raise nf.fail("is required (an inline node or a path relative to the vector root)")
    nf.mapping()
    if overrides.present():
        raise overrides.fail("only applies when node is a path to a shared node file")
    return node_from_field(nf)


def _frame(loader: _Loader, f: Field, what: str) -> bytes:
    """The frame of `f` (a step or an expected output): `packet:` expression or `hex:`."""
    pf, hf = f.child("packet"), f.child("hex")
    if pf.present() == hf.present():
        raise f.fail(f"{what} needs exactly one of packet: (a scapy expression) or hex:")
    if hf.present():
        text = "".join(hf.string().split())
        try:
            return bytes.fromhex(text)
        except ValueError as e:
            raise hf.fail(f"not hex: {e}") from None
    return _evaluate(loader, pf)


def _evaluate(loader: _Loader, pf: Field) -> bytes:
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet

    expr = pf.string()
    ns = loader.names()
    try:
        # Parenthesised so that a YAML block scalar may spread the expression over lines.
        code = compile("(\n" + expr + "\n)", f"{pf.source}: {pf.path}", "eval")
        value = eval(code, dict(ns))
        frame = bytes(value) if isinstance(value, Packet | bytes | bytearray) else None
    except NameError as e:
        hint = ""
        if loader.packets_import_error is not None:
            hint = f" (pyctl.packets did not import: {loader.packets_import_error})"
        raise pf.fail(f"cannot evaluate: {e}{hint}") from None
    # Any error of the expression (syntax, a scapy field refusing a value) is the vector's fault.
    except Exception as e:  # noqa: BLE001
        raise pf.fail(f"cannot evaluate: {type(e).__name__}: {e}") from None
    if frame is None:
        raise pf.fail(f"evaluates to {type(value).__name__}, not a packet or bytes")
    if isinstance(value, Packet) and not isinstance(value, Ether):
        raise pf.fail(f"must be an Ethernet frame (Ether()/...), not {type(value).__name__}")
    return frame


def _port_map(f: Field, node: NodeConfig, hi: int) -> tuple[tuple[int, int], ...]:
    ports = {p.index for p in node.ports}
    out: list[tuple[int, int]] = []
    for k, v in f.mapping().items():
        kf = Field(k, f"{f.path}[{k!r}]", f.source, f.node)
        if isinstance(k, bool) or not isinstance(k, int) or k not in ports:
            raise kf.fail(f"key {k!r} is not one of the node's ports {sorted(ports)}")
        out.append((k, kf.with_value(v).integer(0, hi)))
    return tuple(out)


def _ingress_map(f: Field, node: NodeConfig) -> tuple[tuple[tuple[int, int], int], ...]:
    ports = {p.index for p in node.ports}
    out = []
    for k, v in f.mapping().items():
        kf = Field(k, f"{f.path}[{k!r}]", f.source, f.node)
        parts = str(k).split(",")
        try:
            port, prio = (int(x) for x in parts)
        except ValueError:
            raise kf.fail(f"key {k!r} must be 'port,priority'") from None
        if port not in ports or not 0 <= prio <= 7:
            raise kf.fail(f"key {k!r}: port must be one of {sorted(ports)}, priority 0-7")
        out.append(((port, prio), kf.with_value(v).integer(0, 1 << 40)))
    return tuple(out)


def _port_of(pf: Field, node: NodeConfig) -> int:
    ports = {p.index for p in node.ports}
    port = pf.integer(0, 0xFFFF)
    if port not in ports:
        raise pf.fail(f"port {port} is not one of the node's ports {sorted(ports)}")
    return port


def _outcome(
    loader: _Loader, f: Field, node: NodeConfig
) -> tuple[str | None, tuple[ExpectedOutput, ...]]:
    """A step's `drop:` and `expect:` (what a plane must do with its packet)."""
    df, ef = f.child("drop"), f.child("expect")
    if not df.present() and not ef.present():
        raise f.fail("needs expect: (the outputs, [] for none) or drop: (a reason)")
    drop = df.string() if df.present() else None
    if drop is not None and drop not in DROP_REASONS:
        raise df.fail(f"{drop!r} is not a drop reason of docs/pipeline.md: {DROP_REASONS}")
    expect = []
    for of in ef.items():
        of.mapping(("port", "packet", "hex", "note"))
        port = _port_of(of.child("port"), node)
        expect.append(ExpectedOutput(port, _frame(loader, of, "an output"), of.path))
    return drop, tuple(expect)


def _step(loader: _Loader, f: Field, index: int, node: NodeConfig) -> Step:
    f.mapping(_STEP_FIELDS)
    drop, expect = _outcome(loader, f, node)
    return Step(
        index=index,
        in_port=_port_of(f.child("in_port"), node),
        frame=_frame(loader, f, "a step"),
        expect=expect,
        drop=drop,
        time_us=f.child("time_us").integer(0, 1 << 62, 0),
        egress_queue_bytes=_port_map(f.child("egress_queue_bytes"), node, 1 << 40),
        egress_queue_packets=_port_map(f.child("egress_queue_packets"), node, 1 << 40),
        ingress_queue_bytes=_ingress_map(f.child("ingress_queue_bytes"), node),
        rand32=f.child("rand32").integer(0, _U32, 0),
        note=f.child("note").string() if f.child("note").present() else None,
    )


# ---------------------------------------------------------------------------------------------
# Comparing


def _layers(pkt: Any) -> list[Any]:
    from scapy.packet import NoPayload

    out = []
    while pkt is not None and not isinstance(pkt, NoPayload):
        out.append(pkt)
        pkt = pkt.payload
    return out


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_repr(fld: Any, pkt: Any, value: Any) -> str:
    if isinstance(value, bytes):
        return _short(value.hex() if value else "''")
    try:
        return _short(str(fld.i2repr(pkt, value)))
    # scapy's repr of a dissected value can trip on odd input; fall back to the raw value.
    except Exception:  # noqa: BLE001
        return _short(repr(value))


def _diff_values(label: str, fld: Any, pe: Any, pa: Any, ve: Any, va: Any, out: list[str]) -> None:
    from scapy.packet import Packet

    if isinstance(ve, Packet) and isinstance(va, Packet):
        _diff_layers(ve, va, label, out)
    elif (
        isinstance(ve, list)
        and isinstance(va, list)
        and all(isinstance(x, Packet) for x in ve + va)
        and ve
        and va
    ):
        for i in range(max(len(ve), len(va))):
            sub = f"{label}[{i}]"
            if i >= len(va):
                out.append(f"{sub}: expected {_short(repr(ve[i]))}, got nothing")
            elif i >= len(ve):
                out.append(f"{sub}: expected nothing, got {_short(repr(va[i]))}")
            else:
                _diff_layers(ve[i], va[i], sub, out)
    else:
        detail = ""
        if isinstance(ve, bytes) and isinstance(va, bytes):
            at = _first_difference(ve, va)
            detail = f" (first difference at byte {at} of the field)"
        out.append(
            f"{label}: expected {_value_repr(fld, pe, ve)}, got {_value_repr(fld, pa, va)}{detail}"
        )


def _diff_layers(e: Any, a: Any, prefix: str, out: list[str]) -> None:
    seen: Counter[str] = Counter()
    for le, la in zip(_layers(e), _layers(a), strict=False):
        ne, na = type(le).__name__, type(la).__name__
        seen[ne] += 1
        label = ne if seen[ne] == 1 else f"{ne}#{seen[ne]}"
        label = f"{prefix}.{label}" if prefix else label
        if ne != na:
            out.append(f"{label}: expected layer {ne}, got layer {na}")
            return
        for fld in le.fields_desc:
            ve, va = le.getfieldval(fld.name), la.getfieldval(fld.name)
            if ve != va:
                _diff_values(f"{label}.{fld.name}", fld, le, la, ve, va, out)
    le_all, la_all = _layers(e), _layers(a)
    if len(le_all) > len(la_all):
        extra = " / ".join(type(x).__name__ for x in le_all[len(la_all) :])
        out.append(f"{prefix or 'frame'}: expected further layers {extra}, got none")
    elif len(la_all) > len(le_all):
        extra = " / ".join(type(x).__name__ for x in la_all[len(le_all) :])
        out.append(f"{prefix or 'frame'}: got further layers {extra}, expected none")


def _first_difference(e: bytes, a: bytes) -> int:
    for i, (x, y) in enumerate(zip(e, a, strict=False)):
        if x != y:
            return i
    return min(len(e), len(a))


def _byte_diff(expected: bytes, actual: bytes) -> str:
    at = _first_difference(expected, actual)
    ex = f"0x{expected[at]:02x}" if at < len(expected) else "end of frame"
    ac = f"0x{actual[at]:02x}" if at < len(actual) else "end of frame"
    return (
        f"first differing byte at offset {at}: expected {ex}, got {ac} "
        f"(lengths: expected {len(expected)}, got {len(actual)})"
    )


def field_diff(expected: bytes, actual: bytes) -> list[str]:
    """Differences between two Ethernet frames, layer by layer and field by field.

    The last line always gives the first differing byte offset (the only line when scapy cannot
    dissect one of them).
    """
    from scapy.layers.l2 import Ether

    lines: list[str] = []
    try:
        _diff_layers(Ether(expected), Ether(actual), "", lines)
    # Dissection of a corrupt frame may raise anything; the byte offset below still locates it.
    except Exception as e:  # noqa: BLE001
        lines.append(f"(field diff unavailable: {type(e).__name__}: {e})")
    if expected != actual:
        lines.append(_byte_diff(expected, actual))
    return lines


def _summary(frame: bytes) -> str:
    from scapy.layers.l2 import Ether

    try:
        text = str(Ether(frame).summary())
    except Exception:  # noqa: BLE001 (a summary is best effort)
        text = frame[:16].hex() + "..."
    return f"{len(frame)} bytes: {_short(text, 110)}"


def compare_step(
    step: Step,
    result: Result,
    exact_drop: bool = True,
    normalise: Callable[[bytes], bytes] | None = None,
) -> list[str]:
    """Problems with one step's result (empty when it matches).

    `exact_drop` False accepts any drop reason where a drop is expected (a plane that cannot say
    why it dropped); `normalise` maps expected and produced frames alike before comparing them
    (a plane that differs from SPEC by design in documented bytes).
    """
    norm = normalise if normalise is not None else bytes
    problems = []
    if step.drop is not None and result.drop is None:
        problems.append(f"expected drop {step.drop!r}, got no drop")
    elif step.drop is not None and exact_drop and result.drop != step.drop:
        problems.append(f"expected drop {step.drop!r}, got drop {result.drop!r}")
    elif step.drop is None and result.drop is not None:
        problems.append(f"expected no drop, got drop {result.drop!r}")
    expected = Counter((o.port, norm(o.frame)) for o in step.expect)
    actual = Counter((o.port, norm(bytes(o.frame))) for o in result.outputs)
    missing = list((expected - actual).elements())
    extra = list((actual - expected).elements())
    where = {(o.port, norm(o.frame)): o.where for o in step.expect}
    for port, frame in missing:
        best = _closest(port, frame, extra)
        label = where[(port, frame)]
        if best is None:
            problems.append(f"{label}: expected on port {port} ({_summary(frame)}), not produced")
            continue
        extra.remove(best)
        bport, bframe = best
        head = f"{label}: expected on port {port}, got on port {bport}"
        if bframe == frame:
            problems.append(f"{head}: same bytes, wrong port")
            continue
        problems.append(head + " a different frame:")
        problems += [f"    {line}" for line in field_diff(frame, bframe)]
    for port, frame in extra:
        problems.append(f"unexpected output on port {port} ({_summary(frame)})")
    return problems


def _closest(
    port: int, frame: bytes, candidates: list[tuple[int, bytes]]
) -> tuple[int, bytes] | None:
    """The produced output most likely meant to be `frame`: same port, then most bytes alike."""

    def score(c: tuple[int, bytes]) -> tuple[int, int]:
        same = sum(1 for x, y in zip(frame, c[1], strict=False) if x == y)
        return (c[0] == port, same - abs(len(frame) - len(c[1])))

    return max(candidates, key=score) if candidates else None


# ---------------------------------------------------------------------------------------------
# Running


def _supports_reason(target: type[DataPlane] | DataPlane, covers: tuple[str, ...]) -> str | None:
    supports = getattr(target, "supports", None)
    if supports is None or not callable(supports):
        return None
    reason = supports(list(covers))
    return None if reason is None else str(reason)


def _is_class_level(cls: type[DataPlane], name: str) -> bool:
    return isinstance(inspect.getattr_static(cls, name, None), classmethod | staticmethod)


def class_support(cls: type[DataPlane], covers: tuple[str, ...] | list[str]) -> str | None:
    """Why `cls` declares, without an instance, that it cannot run these features (else None)."""
    if not _is_class_level(cls, "supports"):
        return None
    return _supports_reason(cls, tuple(covers))


def run_vector(
    vec: Vector, dataplane_name: str, factory: Callable[[], DataPlane] | None = None
) -> VectorResult:
    """Run a vector's steps in order on a freshly configured instance of the named data plane.

    `factory` builds the instance instead of `open_dataplane` (tests use it to pass constructor
    arguments such as a namespace prefix).
    """

    def result(status: str, detail: str = "") -> VectorResult:
        return VectorResult(vec.name, dataplane_name, status, detail)

    try:
        cls = dataplane_class(dataplane_name)
    except ImportError as e:
        return result("skip", f"cannot import the data plane: {e}")
    except DataPlaneUnavailable as e:
        return result("skip", str(e))
    reason = cls.unavailable() or class_support(cls, vec.covers)
    if reason is not None:
        return result("skip", reason)
    try:
        dp = factory() if factory is not None else open_dataplane(dataplane_name)
    except DataPlaneUnavailable as e:
        return result("skip", str(e))
    try:
        if not _is_class_level(cls, "supports"):
            reason = _supports_reason(dp, vec.covers)
            if reason is not None:
                return result("skip", reason)
        return _run_steps(vec, dp, result, vec.difference(dataplane_name))
    finally:
        dp.close()


def _run_steps(vec: Vector, dp: DataPlane, result: Any, known: Difference | None) -> VectorResult:
    # Optional hooks of a data plane (see docs/vectors.md): drop reasons it cannot report, and
    # bytes it is documented to produce differently.
    exact_drop = bool(getattr(dp, "exact_drop_reasons", True))
    hook = getattr(dp, "comparable", None)
    normalise = (lambda frame: bytes(hook(frame, vec.node))) if callable(hook) else None
    # A data plane that raises is failing this vector; the runner must go on with the others.
    try:
        dp.configure(vec.node)
    except DataPlaneUnavailable as e:
        return result("skip", str(e))
    except Exception as e:  # noqa: BLE001
        return result("FAIL", f"configure raised {type(e).__name__}: {e}")
    for step in vec.steps:
        head = f"step {step.index} (in_port {step.in_port}"
        head += f", {step.note})" if step.note else ")"
        try:
            res = dp.process(step.frame, step.context())
        except DataPlaneUnavailable as e:
            # the plane met a part of the node it cannot run (e.g. the kernel without a VRF)
            return result("skip", f"{head}: {e}")
        except Exception as e:  # noqa: BLE001
            return result("FAIL", f"{head}: process raised {type(e).__name__}: {e}")
        alternative = known.at(step.index) if known is not None else None
        problems = compare_step(step, res, exact_drop, normalise)
        if known is not None and alternative is not None:
            if not problems:
                return result(
                    "FAIL",
                    f"{head}: matches SPEC, so the documented difference of {known.plane}"
                    f" no longer holds; mend or remove it: {known.why}",
                )
            # the plane must differ exactly as documented: same drop, same output bytes
            problems = compare_step(alternative, res, exact_drop, normalise)
            if problems:
                problems = [f"differs from SPEC, but not as documented ({known.why}):"] + problems
        if problems:
            later = len(vec.steps) - step.index - 1
            tail = [f"(the {later} later step(s) were not run)"] if later else []
            return result("FAIL", "\n".join([f"{head}:"] + [f"  {p}" for p in problems] + tail))
    if known is not None:
        return result("differs", known.why)
    return result("pass")


def run_matrix(vectors: list[Vector], dataplanes: list[str]) -> Matrix:
    matrix = Matrix(vectors=list(vectors), dataplanes=list(dataplanes))
    for vec in vectors:
        for dp in dataplanes:
            matrix.results[(vec.name, dp)] = run_vector(vec, dp)
    return matrix


def format_table(matrix: Matrix) -> str:
    """Vector x data-plane table (pass / FAIL / skip [n] with the reasons as notes) + summary."""
    notes: dict[str, int] = {}
    rows = []
    for vec in matrix.vectors:
        cells = []
        for dp in matrix.dataplanes:
            r = matrix.results.get((vec.name, dp))
            if r is None:
                cells.append("-")
            elif r.status in ("skip", "differs"):
                n = notes.setdefault(f"{r.status}: {dp}: {r.detail}", len(notes) + 1)
                cells.append(f"{r.status} [{n}]")
            else:
                cells.append(r.status)
        rows.append([vec.rel, *cells])
    header = ["vector", *matrix.dataplanes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"[{n}] {text}" for text, n in notes.items()]
    lines.append("")
    lines += format_totals(matrix)
    differs = matrix.count("differs")
    lines.append(
        f"vectors: {matrix.count('pass')} passed, {matrix.count('FAIL')} failed, "
        f"{matrix.count('skip')} skipped"
        + (f" ({differs} documented differences)" if differs else "")
    )
    return "\n".join(lines)


STATUSES = ("pass", "differs", "skip", "FAIL")


def plane_totals(matrix: Matrix, plane: str) -> dict[str, int]:
    """How many vectors ended in each status on one plane (they add up to the vector count)."""
    counts = Counter(r.status for (_, dp), r in matrix.results.items() if dp == plane)
    return {status: counts.get(status, 0) for status in STATUSES}


def format_totals(matrix: Matrix) -> list[str]:
    """One line per data plane: pass / differs / skip / FAIL out of the vectors run."""
    width = max((len(dp) for dp in matrix.dataplanes), default=0)
    lines = []
    for dp in matrix.dataplanes:
        totals = plane_totals(matrix, dp)
        counts = " / ".join(f"{totals[s]} {s}" for s in STATUSES)
        lines.append(f"{dp.ljust(width)}  {counts}  (of {sum(totals.values())} vectors)")
    return lines


def format_failures(matrix: Matrix) -> str:
    out = []
    by_name = {v.name: v for v in matrix.vectors}
    for (name, dp), r in matrix.results.items():
        if r.status == "FAIL":
            vec = by_name[name]
            out.append(f"FAIL {vec.rel} on {dp} ({vec.path}; expected bytes from: {vec.spec})")
            out += [f"  {line}" for line in r.detail.splitlines()]
    return "\n".join(out)


def main(dataplanes: list[str] | None, root: Path, select: str | None, verbose: bool) -> int:
    """Run the vectors under `root` on the data planes (all registered ones when None).

    Exit code: 0 when nothing failed, 1 on any FAIL, 2 on a bad vector or argument.
    """
    names = list(dataplanes) if dataplanes else list(DATAPLANES)
    unknown = [n for n in names if n not in DATAPLANES]
    if unknown:
        print(
            f"error: unknown data plane(s) {unknown} (known: {list(DATAPLANES)})", file=sys.stderr
        )
        return 2
    try:
        vectors = load_vectors(Path(root), select)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not vectors:
        what = f" matching {select!r}" if select else ""
        print(f"error: no vectors{what} under {root}", file=sys.stderr)
        return 2
    matrix = run_matrix(vectors, names)
    if verbose:
        for vec in vectors:
            for dp in names:
                r = matrix.results[(vec.name, dp)]
                extra = f": {r.detail}" if r.status == "skip" else ""
                print(f"{r.status:4} {vec.rel} [{dp}] ({', '.join(vec.covers)}; {vec.spec}){extra}")
        print()
    failures = format_failures(matrix)
    if failures:
        print(failures)
        print()
    print(format_table(matrix))
    return 1 if matrix.failed else 0
