"""Conformance vectors as data, and their loader: `tests/vectors/**/*.yaml` -> `Vector`s.

A vector is a node configuration plus steps (input frame + context -> expected outputs or drop),
written by hand from SPEC.md and docs/pipeline.md; the format is in docs/vectors.md. Every field
is checked as it is read: a wrong one is a ConfigError naming the file, line and field.
"""

from __future__ import annotations

import builtins
import dataclasses
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl.errors import ConfigError
from pyctl.model.fields import Field
from pyctl.model.load import node_from_dict, node_from_field
from pyctl.model.node import NodeConfig, PacketContext
from pyctl.targets import DATAPLANES
from pyctl.targets.base import FEATURES
from pyctl.targets.bmv2 import codes as bmv2_codes
from pyctl.targets.reasons import DROP_CODES

# The drop reasons docs/pipeline.md defines (one table for every data plane); a vector naming
# another one has a typo.
DROP_REASONS: tuple[str, ...] = tuple(DROP_CODES)
# Reasons a plane gives past a limit of its own (docs/p4.md): only in its known_differences.
PLANE_DROP_REASONS: dict[str, tuple[str, ...]] = {"bmv2": (bmv2_codes.DROP_P4_LIMIT_NAME,)}

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
    except Exception as e:
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
        drop, expect = _outcome(loader, sf, node, PLANE_DROP_REASONS.get(plane, ()))
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
    except Exception as e:
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
    loader: _Loader, f: Field, node: NodeConfig, plane_reasons: tuple[str, ...] = ()
) -> tuple[str | None, tuple[ExpectedOutput, ...]]:
    """A step's `drop:` and `expect:` (what a plane must do with its packet); `plane_reasons`
    are the plane's own (a known difference's)."""
    df, ef = f.child("drop"), f.child("expect")
    if not df.present() and not ef.present():
        raise f.fail("needs expect: (the outputs, [] for none) or drop: (a reason)")
    drop = df.string() if df.present() else None
    if drop is not None and drop not in DROP_REASONS + plane_reasons:
        raise df.fail(
            f"{drop!r} is not a drop reason of docs/pipeline.md: {DROP_REASONS + plane_reasons}"
        )
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
