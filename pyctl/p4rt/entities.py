"""P4Runtime entities by name, and their encoding through the P4Info.

The dataclasses here say *what* to write (table ``my_sid``, match ``sid`` = ``fc00:1::/48``,
action ``end``); `Codec` turns them into protobuf with the ids, widths and canonical values the
P4Info gives, and refuses anything the P4Info does not allow, naming the entity and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyctl.p4rt.errors import P4InfoError
from pyctl.p4rt.p4info import (
    ActionInfo,
    FieldInfo,
    P4Info,
    TableInfo,
    Value,
    decode,
    encode,
    to_int,
)
from pyctl.p4rt.pb import p4runtime_pb2


@dataclass(frozen=True)
class Exact:
    value: Value


@dataclass(frozen=True)
class LPM:
    value: Value
    prefix_len: int


@dataclass(frozen=True)
class Ternary:
    value: Value
    mask: Value


@dataclass(frozen=True)
class Range:
    low: Value
    high: Value


@dataclass(frozen=True)
class Optional:
    value: Value


Match = Exact | LPM | Ternary | Range | Optional


@dataclass(frozen=True)
class TableEntry:
    """A table entry. A plain value in `match` is an exact match; `default` modifies the table's
    default action (no match, no priority)."""

    table: str
    match: Mapping[str, Match | Value] = field(default_factory=dict)
    action: str | None = None
    params: Mapping[str, Value] = field(default_factory=dict)
    priority: int = 0
    default: bool = False
    member_id: int | None = None  # action-profile member instead of an action
    group_id: int | None = None  # action-profile group instead of an action


@dataclass(frozen=True)
class ActionProfileMember:
    profile: str
    member_id: int
    action: str
    params: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionProfileGroup:
    profile: str
    group_id: int
    members: tuple[tuple[int, int], ...] = ()  # (member id, weight)
    max_size: int = 0


@dataclass(frozen=True)
class CounterEntry:
    """An indirect counter cell; for writes, the packet and byte counts to set."""

    counter: str
    index: int | None = None  # None in a read: every cell
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class CloneSession:
    """A clone (mirror) session: copies go to each (port, instance) replica."""

    session_id: int
    replicas: tuple[tuple[int, int], ...]
    packet_length: int = 0  # 0: whole packet


@dataclass(frozen=True)
class MulticastGroup:
    group_id: int
    replicas: tuple[tuple[int, int], ...]  # (port, instance / rid)


Entity = (
    TableEntry
    | ActionProfileMember
    | ActionProfileGroup
    | CounterEntry
    | CloneSession
    | MulticastGroup
)


def _fmt(value: Value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return hex(value) if value > 9 else str(value)
    return str(value)


def describe(entity: Entity) -> str:
    """A short human name of the entity with its key, for error messages."""
    if isinstance(entity, TableEntry):
        if entity.default:
            return f"table {entity.table} (default action)"
        keys = []
        for k, m in entity.match.items():
            if isinstance(m, LPM):
                keys.append(f"{k}={_fmt(m.value)}/{m.prefix_len}")
            elif isinstance(m, Ternary):
                keys.append(f"{k}={_fmt(m.value)}&&&{_fmt(m.mask)}")
            elif isinstance(m, Range):
                keys.append(f"{k}={_fmt(m.low)}..{_fmt(m.high)}")
            elif isinstance(m, Exact | Optional):
                keys.append(f"{k}={_fmt(m.value)}")
            else:
                keys.append(f"{k}={_fmt(m)}")
        prio = f" priority {entity.priority}" if entity.priority else ""
        return f"table {entity.table} {{{', '.join(keys)}}}{prio}"
    if isinstance(entity, ActionProfileMember):
        return f"action profile {entity.profile} member {entity.member_id}"
    if isinstance(entity, ActionProfileGroup):
        return f"action profile {entity.profile} group {entity.group_id}"
    if isinstance(entity, CounterEntry):
        return f"counter {entity.counter}[{entity.index}]"
    if isinstance(entity, CloneSession):
        return f"clone session {entity.session_id}"
    return f"multicast group {entity.group_id}"


class _Where:
    """The entity's description, computed only when an error needs it."""

    __slots__ = ("entity", "suffix")

    def __init__(self, entity: Entity, suffix: str = "") -> None:
        self.entity = entity
        self.suffix = suffix

    def __str__(self) -> str:
        return describe(self.entity) + self.suffix


class Codec:
    """Encodes entities to P4Runtime protobuf and decodes them back, through one P4Info."""

    def __init__(self, p4info: P4Info) -> None:
        self.p4info = p4info
        self._priority_tables: dict[int, bool] = {}

    # ---- encoding ----------------------------------------------------------------------------

    def entity(self, obj: Entity) -> p4runtime_pb2.Entity:
        ent = p4runtime_pb2.Entity()
        self.fill_entity(ent, obj)
        return ent

    def fill_entity(self, ent: p4runtime_pb2.Entity, obj: Entity) -> None:
        """Encode obj into ent in place (no intermediate messages to copy)."""
        if isinstance(obj, TableEntry):
            self._fill_table_entry(ent.table_entry, obj)
        elif isinstance(obj, ActionProfileMember):
            prof = self.p4info.action_profiles.get(obj.profile)
            m = ent.action_profile_member
            m.action_profile_id = prof.id
            m.member_id = obj.member_id
            self._fill_action(m.action, self.p4info.action(obj.action), obj.params, _Where(obj))
        elif isinstance(obj, ActionProfileGroup):
            prof = self.p4info.action_profiles.get(obj.profile)
            g = ent.action_profile_group
            g.action_profile_id = prof.id
            g.group_id = obj.group_id
            g.max_size = obj.max_size
            for member_id, weight in obj.members:
                g.members.add(member_id=member_id, weight=weight)
        elif isinstance(obj, CounterEntry):
            ctr = self.p4info.counters.get(obj.counter)
            c = ent.counter_entry
            c.counter_id = ctr.id
            if obj.index is not None:
                if ctr.size and not 0 <= obj.index < ctr.size:
                    raise P4InfoError(
                        f"index {obj.index} is outside 0..{ctr.size - 1}",
                        entity=describe(obj),
                        field="index",
                    )
                c.index.index = obj.index
            c.data.packet_count = obj.packets
            c.data.byte_count = obj.bytes
        elif isinstance(obj, CloneSession):
            cs = ent.packet_replication_engine_entry.clone_session_entry
            cs.session_id = obj.session_id
            cs.packet_length_bytes = obj.packet_length
            for port, instance in obj.replicas:
                cs.replicas.add(egress_port=port, instance=instance)
        else:
            mg = ent.packet_replication_engine_entry.multicast_group_entry
            mg.multicast_group_id = obj.group_id
            for port, instance in obj.replicas:
                mg.replicas.add(egress_port=port, instance=instance)

    def table_entry(self, obj: TableEntry) -> p4runtime_pb2.TableEntry:
        te = p4runtime_pb2.TableEntry()
        self._fill_table_entry(te, obj)
        return te

    def _needs_priority(self, table: TableInfo) -> bool:
        cached = self._priority_tables.get(table.id)
        if cached is None:
            cached = any(
                f.match_type in ("ternary", "range", "optional")
                for f in table.match_fields.values()
            )
            self._priority_tables[table.id] = cached
        return cached

    def _fill_table_entry(self, te: p4runtime_pb2.TableEntry, obj: TableEntry) -> None:
        table = self.p4info.table(obj.table)
        where = _Where(obj)
        te.table_id = table.id
        if obj.default:
            te.is_default_action = True
            if obj.match:
                raise P4InfoError("a default entry has no match", entity=str(where))
        else:
            for name, m in obj.match.items():
                self._field_match(te, table, name, m, where)
            if self._needs_priority(table) and obj.priority <= 0:
                raise P4InfoError(
                    "a table with ternary, range or optional fields needs a priority > 0",
                    entity=str(where),
                    field="priority",
                )
            if obj.priority:
                te.priority = obj.priority
        if obj.member_id is not None:
            te.action.action_profile_member_id = obj.member_id
        elif obj.group_id is not None:
            te.action.action_profile_group_id = obj.group_id
        elif obj.action is not None:
            action = self.p4info.action(obj.action)
            if action.id not in table.action_ids:
                self.p4info.check_action_of(table, action)
            self._fill_action(te.action.action, action, obj.params, where)
        elif not obj.default:
            raise P4InfoError("the entry has no action", entity=str(where))

    def _field_match(
        self,
        te: p4runtime_pb2.TableEntry,
        table: TableInfo,
        name: str,
        m: Match | Value,
        where: _Where,
    ) -> None:
        info = table.match_fields.get(name) or self.p4info.match_field(table, name)
        bw = info.bitwidth
        if type(m) is int and info.match_type == "exact" and 0 <= m < 1 << bw:  # the common case
            te.match.add(field_id=info.id).exact.value = m.to_bytes((bw + 7) // 8, "big")
            return
        if type(m) is LPM and type(m.value) is int and info.match_type == "lpm":  # and this one
            plen = m.prefix_len
            if 0 < plen <= bw and 0 <= m.value < 1 << bw:
                fm = te.match.add(field_id=info.id)
                mask = ((1 << plen) - 1) << (bw - plen)
                fm.lpm.value = (m.value & mask).to_bytes((bw + 7) // 8, "big")
                fm.lpm.prefix_len = plen
                return
        if not isinstance(m, Exact | LPM | Ternary | Range | Optional):
            m = Exact(m) if info.match_type == "exact" else _default_match(info, m)
        kind = _KINDS[type(m)]
        if kind != info.match_type:
            raise P4InfoError(
                f"is a {info.match_type} field, given a {kind} match", entity=str(where), field=name
            )
        if isinstance(m, Exact):
            te.match.add(field_id=info.id).exact.value = encode(m.value, bw, where, name)
        elif isinstance(m, LPM):
            if not 0 <= m.prefix_len <= bw:
                raise P4InfoError(
                    f"prefix length {m.prefix_len} is not in 0..{bw}", entity=str(where), field=name
                )
            if m.prefix_len == 0:
                return  # don't care: omitted (P4Runtime spec 9.1.1)
            mask = ((1 << m.prefix_len) - 1) << (bw - m.prefix_len)
            fm = te.match.add(field_id=info.id)
            fm.lpm.value = encode(to_int(m.value, where, name) & mask, bw, where, name)
            fm.lpm.prefix_len = m.prefix_len
        elif isinstance(m, Ternary):
            mask = to_int(m.mask, where, name)
            if mask == 0:
                return
            fm = te.match.add(field_id=info.id)
            fm.ternary.value = encode(to_int(m.value, where, name) & mask, bw, where, name)
            fm.ternary.mask = encode(mask, bw, where, name)
        elif isinstance(m, Range):
            low, high = to_int(m.low, where, name), to_int(m.high, where, name)
            if low > high:
                raise P4InfoError(f"range {low}..{high} is empty", entity=str(where), field=name)
            if low == 0 and high == (1 << bw) - 1:
                return
            fm = te.match.add(field_id=info.id)
            fm.range.low = encode(low, bw, where, name)
            fm.range.high = encode(high, bw, where, name)
        else:
            te.match.add(field_id=info.id).optional.value = encode(m.value, bw, where, name)

    def _fill_action(
        self,
        msg: p4runtime_pb2.Action,
        action: ActionInfo,
        params: Mapping[str, Value],
        where: _Where,
    ) -> None:
        msg.action_id = action.id
        if params.keys() != action.params.keys():  # the common case skips the search below
            missing = [p for p in action.params if p not in params]
            if missing:
                raise P4InfoError(
                    f"action {action.name} needs parameter(s) {', '.join(missing)}",
                    entity=str(where),
                    field=missing[0],
                )
        for pname, value in params.items():
            info = action.params.get(pname) or self.p4info.action_param(action, pname)
            msg.params.add(param_id=info.id, value=encode(value, info.bitwidth, where, pname))

    # ---- decoding (reads) --------------------------------------------------------------------

    def decode_table_entry(self, te: p4runtime_pb2.TableEntry) -> TableEntry:
        table = self.p4info.tables.by(te.table_id)
        match: dict[str, Match | Value] = {}
        for fm in te.match:
            info = table.fields_by_id[fm.field_id]
            which = fm.WhichOneof("field_match_type")
            if which == "exact":
                match[info.name] = Exact(decode(fm.exact.value))
            elif which == "lpm":
                match[info.name] = LPM(decode(fm.lpm.value), fm.lpm.prefix_len)
            elif which == "ternary":
                match[info.name] = Ternary(decode(fm.ternary.value), decode(fm.ternary.mask))
            elif which == "range":
                match[info.name] = Range(decode(fm.range.low), decode(fm.range.high))
            else:
                match[info.name] = Optional(decode(fm.optional.value))
        action_name = None
        params: dict[str, Value] = {}
        member_id = group_id = None
        which_action = te.action.WhichOneof("type")
        if which_action == "action":
            ainfo = self.p4info.actions.by(te.action.action.action_id)
            action_name = ainfo.name
            for p in te.action.action.params:
                params[ainfo.params_by_id[p.param_id].name] = decode(p.value)
        elif which_action == "action_profile_member_id":
            member_id = te.action.action_profile_member_id
        elif which_action == "action_profile_group_id":
            group_id = te.action.action_profile_group_id
        return TableEntry(
            table=table.name,
            match=match,
            action=action_name,
            params=params,
            priority=te.priority,
            default=te.is_default_action,
            member_id=member_id,
            group_id=group_id,
        )

    def field_names(self, entity: Entity) -> list[str]:
        """Match-field and parameter names of an entity (to spot them in a switch's message)."""
        if not isinstance(entity, TableEntry):
            return []
        names = list(entity.match)
        names += list(entity.params)
        return names


_KINDS: dict[type, str] = {
    Exact: "exact",
    LPM: "lpm",
    Ternary: "ternary",
    Range: "range",
    Optional: "optional",
}


def _default_match(info: FieldInfo, value: Value) -> Match:
    """A plain value for a non-exact field: the most specific match of that kind."""
    if info.match_type == "lpm":
        return LPM(value, info.bitwidth)
    if info.match_type == "ternary":
        return Ternary(value, (1 << info.bitwidth) - 1)
    if info.match_type == "range":
        return Range(value, value)
    return Optional(value)
