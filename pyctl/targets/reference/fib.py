"""Longest-prefix-match tables: the FIB (per table id and address family) and the My-SID table."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyctl.model.node import Adjacency, LocalSID, Route

T = TypeVar("T")
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class LpmTable(Generic[T]):
    """Entries sorted longest prefix first; on equal prefixes the first configured one wins."""

    entries: tuple[tuple[Net, T], ...]

    @classmethod
    def build(cls, entries: Iterable[tuple[Net, T]]) -> LpmTable[T]:
        ordered = sorted(enumerate(entries), key=lambda ie: (-ie[1][0].prefixlen, ie[0]))
        return cls(tuple(e for _, e in ordered))

    def lookup(self, addr: bytes) -> T | None:
        ip = ipaddress.ip_address(addr)
        for net, value in self.entries:
            if net.version == ip.version and ip in net:
                return value
        return None


@dataclass(frozen=True)
class Fib:
    """Routes by table id; `lookup` takes the packed destination (4 or 16 octets)."""

    tables: dict[int, LpmTable[Adjacency]]

    @classmethod
    def build(cls, routes: Iterable[Route]) -> Fib:
        by_table: dict[int, list[tuple[Net, Adjacency]]] = {}
        for r in routes:
            by_table.setdefault(r.table, []).append((r.prefix, r.via))
        return cls({t: LpmTable.build(es) for t, es in by_table.items()})

    def lookup(self, table: int, addr: bytes) -> Adjacency | None:
        t = self.tables.get(table)
        return t.lookup(addr) if t is not None else None


def sid_table(sids: Iterable[LocalSID]) -> LpmTable[LocalSID]:
    return LpmTable.build((s.sid, s) for s in sids)
