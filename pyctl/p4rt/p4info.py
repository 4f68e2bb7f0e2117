"""P4Info: every name the client uses is resolved here, never a hard-coded id.

A name is a P4Info full name (``IcpnIngress.endpoint.my_sid``) or its alias (``my_sid``); a
name both could mean is refused with the candidates listed.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from pyctl.p4rt.errors import P4InfoError
from pyctl.p4rt.pb import p4info_pb2

MATCH_KINDS = {
    p4info_pb2.MatchField.EXACT: "exact",
    p4info_pb2.MatchField.LPM: "lpm",
    p4info_pb2.MatchField.TERNARY: "ternary",
    p4info_pb2.MatchField.RANGE: "range",
    p4info_pb2.MatchField.OPTIONAL: "optional",
}


@dataclass(frozen=True)
class FieldInfo:
    """A match field, action parameter or packet-metadata field."""

    id: int
    name: str
    bitwidth: int
    match_type: str = ""


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str
    alias: str
    params: dict[str, FieldInfo]
    params_by_id: dict[int, FieldInfo]


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    alias: str
    match_fields: dict[str, FieldInfo]
    fields_by_id: dict[int, FieldInfo]
    action_ids: tuple[int, ...]
    size: int
    implementation_id: int = 0
    const_default_action_id: int = 0


@dataclass(frozen=True)
class ObjectInfo:
    """Counters, registers, action profiles, digests: only id, name and size matter here."""

    id: int
    name: str
    alias: str
    size: int = 0


@dataclass(frozen=True)
class PacketMetadataInfo:
    id: int
    name: str
    fields: dict[str, FieldInfo]
    fields_by_id: dict[int, FieldInfo]


T = TypeVar("T")


@dataclass
class _Index(Generic[T]):
    """Objects of one kind by id, full name and alias."""

    kind: str
    by_id: dict[int, T] = field(default_factory=dict)
    by_name: dict[str, T] = field(default_factory=dict)
    by_alias: dict[str, list[T]] = field(default_factory=dict)
    resolved: dict[str, T] = field(default_factory=dict)  # aliases found unique, by alias

    def add(self, obj_id: int, name: str, alias: str, obj: T) -> None:
        self.by_id[obj_id] = obj
        self.by_name[name] = obj
        self.by_alias.setdefault(alias, []).append(obj)
        # Every dotted suffix of the full name also finds the object when unique.
        parts = name.split(".")
        for i in range(1, len(parts)):
            suffix = ".".join(parts[i:])
            if suffix != alias:
                self.by_alias.setdefault(suffix, []).append(obj)

    def get(self, name: str) -> T:
        if name in self.by_name:
            return self.by_name[name]
        if name in self.resolved:
            return self.resolved[name]
        found = self.by_alias.get(name, [])
        unique = list({id(o): o for o in found}.values())
        if len(unique) == 1:
            self.resolved[name] = unique[0]  # the next lookup is one dict hit
            return unique[0]
        if len(unique) > 1:
            names = sorted(getattr(o, "name", "?") for o in unique)
            raise P4InfoError(f"{self.kind} name {name!r} is ambiguous: {', '.join(names)}")
        known = ", ".join(sorted(self.by_name)) or "none"
        raise P4InfoError(f"no {self.kind} {name!r} in the P4Info (known: {known})")

    def by(self, obj_id: int) -> T:
        try:
            return self.by_id[obj_id]
        except KeyError:
            raise P4InfoError(f"no {self.kind} with id {obj_id} in the P4Info") from None


class P4Info:
    """An indexed P4Info message."""

    def __init__(self, message: p4info_pb2.P4Info) -> None:
        self.message = message
        self.tables: _Index[TableInfo] = _Index("table")
        self.actions: _Index[ActionInfo] = _Index("action")
        self.counters: _Index[ObjectInfo] = _Index("counter")
        self.direct_counters: _Index[ObjectInfo] = _Index("direct counter")
        self.registers: _Index[ObjectInfo] = _Index("register")
        self.action_profiles: _Index[ObjectInfo] = _Index("action profile")
        self.digests: _Index[ObjectInfo] = _Index("digest")
        self.packet_metadata: dict[str, PacketMetadataInfo] = {}
        for t in message.tables:
            fields = {
                f.name: FieldInfo(f.id, f.name, f.bitwidth, MATCH_KINDS.get(f.match_type, "other"))
                for f in t.match_fields
            }
            info = TableInfo(
                id=t.preamble.id,
                name=t.preamble.name,
                alias=t.preamble.alias or t.preamble.name,
                match_fields=fields,
                fields_by_id={f.id: f for f in fields.values()},
                action_ids=tuple(a.id for a in t.action_refs),
                size=t.size,
                implementation_id=t.implementation_id,
                const_default_action_id=t.const_default_action_id,
            )
            self.tables.add(info.id, info.name, info.alias, info)
        for a in message.actions:
            params = {p.name: FieldInfo(p.id, p.name, p.bitwidth) for p in a.params}
            ainfo = ActionInfo(
                id=a.preamble.id,
                name=a.preamble.name,
                alias=a.preamble.alias or a.preamble.name,
                params=params,
                params_by_id={p.id: p for p in params.values()},
            )
            self.actions.add(ainfo.id, ainfo.name, ainfo.alias, ainfo)
        for kind, items in (
            (self.counters, message.counters),
            (self.direct_counters, message.direct_counters),
            (self.registers, message.registers),
            (self.action_profiles, message.action_profiles),
            (self.digests, message.digests),
        ):
            for o in items:
                size = getattr(o, "size", 0)
                oinfo = ObjectInfo(o.preamble.id, o.preamble.name, o.preamble.alias, size)
                kind.add(oinfo.id, oinfo.name, oinfo.alias or oinfo.name, oinfo)
        for cpm in message.controller_packet_metadata:
            pfields = {m.name: FieldInfo(m.id, m.name, m.bitwidth) for m in cpm.metadata}
            self.packet_metadata[cpm.preamble.name] = PacketMetadataInfo(
                cpm.preamble.id, cpm.preamble.name, pfields, {f.id: f for f in pfields.values()}
            )

    @classmethod
    def load(cls, path: Path | str) -> P4Info:
        """Read a P4Info file: text format (``.txt``, ``.txtpb``) or binary (``.bin``)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise P4InfoError(f"cannot read P4Info {path}: {e.strerror}") from None
        message = p4info_pb2.P4Info()
        try:
            if path.suffix in (".bin", ".pb"):
                message.ParseFromString(data)
            else:
                text_format.Parse(data.decode(), message)
        except (text_format.ParseError, DecodeError, UnicodeDecodeError) as e:
            raise P4InfoError(f"{path} is not a P4Info: {e}") from None
        return cls(message)

    def table(self, name: str) -> TableInfo:
        return self.tables.get(name)

    def action(self, name: str) -> ActionInfo:
        return self.actions.get(name)

    def match_field(self, table: TableInfo, name: str) -> FieldInfo:
        try:
            return table.match_fields[name]
        except KeyError:
            known = ", ".join(table.match_fields) or "none"
            raise P4InfoError(
                f"no such match field (fields: {known})",
                entity=f"table {table.name}",
                field=name,
            ) from None

    def action_param(self, action: ActionInfo, name: str) -> FieldInfo:
        try:
            return action.params[name]
        except KeyError:
            known = ", ".join(action.params) or "none"
            raise P4InfoError(
                f"no such parameter (parameters: {known})",
                entity=f"action {action.name}",
                field=name,
            ) from None

    def check_action_of(self, table: TableInfo, action: ActionInfo) -> None:
        if action.id not in table.action_ids:
            names = ", ".join(self.actions.by(a).name for a in table.action_ids)
            raise P4InfoError(
                f"action {action.name} is not one of the table's actions ({names})",
                entity=f"table {table.name}",
            )

    def packet_meta(self, name: str) -> PacketMetadataInfo:
        try:
            return self.packet_metadata[name]
        except KeyError:
            raise P4InfoError(
                f"the P4Info has no controller header {name!r} "
                f"(has: {', '.join(self.packet_metadata) or 'none'})"
            ) from None


Value = int | bytes | str | ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def _text_to_int(text: str) -> int | None:
    """A MAC, IP address or number written as text (None: none of them). Cached: a controller
    writes the same next-hop MACs and addresses into thousands of entries."""
    text = text.strip()
    try:
        if ":" in text and len(text) == 17 and text.count(":") == 5 and "::" not in text:
            return int(text.replace(":", ""), 16)
        if ":" in text or text.count(".") == 3:
            return int(ipaddress.ip_address(text))
        return int(text, 0)
    except ValueError:
        return None


def to_int(value: Value, where: object, field_name: str) -> int:
    """An integer from an int, bytes, an IP address or a MAC / IP / number string."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return int(value)
    number = _text_to_int(value)
    if number is None:
        raise P4InfoError(
            f"{value!r} is not a number, MAC or IP address", entity=str(where), field=field_name
        )
    return number


def encode(value: Value, bitwidth: int, where: object, field_name: str) -> bytes:
    """The value as a byte string of the field's width (ceil(bitwidth / 8) octets)."""
    if type(value) is int and 0 <= value < 1 << bitwidth:  # the common case, first
        return value.to_bytes((bitwidth + 7) // 8, "big")
    number = to_int(value, where, field_name)
    if number < 0 or number >= 1 << bitwidth:
        raise P4InfoError(
            f"value {number:#x} does not fit in {bitwidth} bits",
            entity=str(where),
            field=field_name,
        )
    return number.to_bytes((bitwidth + 7) // 8, "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")
