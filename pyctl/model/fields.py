"""Typed, path-aware access to parsed YAML: every error names the file, the field and the value."""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from pyctl.errors import ConfigError

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class Field:
    """A position in a YAML document: knows its path so every error can name it."""

    def __init__(self, value: Any, path: str, source: str, node: yaml.Node | None = None) -> None:
        self.value = value
        self.path = path
        self.source = source
        self.node = node  # the YAML node, when known: gives the line number for errors

    @classmethod
    def from_yaml(cls, text: str, source: str) -> Field:
        """Parse YAML text; a syntax error becomes a ConfigError naming the line."""
        try:
            return cls(yaml.safe_load(text), "", source, yaml.compose(text))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"{source}{line}", f"not valid YAML: {getattr(e, 'problem', e)}"
            ) from None

    def fail(self, message: str) -> ConfigError:
        line = f" line {self.node.start_mark.line + 1}" if self.node is not None else ""
        where = f"{self.source}{line}: {self.path}" if self.path else f"{self.source}{line}"
        return ConfigError(where, message)

    def _child_node(self, key: str | int) -> yaml.Node | None:
        if isinstance(key, int) and isinstance(self.node, yaml.SequenceNode):
            return self.node.value[key] if key < len(self.node.value) else None
        if isinstance(key, str) and isinstance(self.node, yaml.MappingNode):
            for k, v in self.node.value:
                if k.value == key:
                    return v
        return None

    def child(self, key: str | int) -> Field:
        sep = "" if not self.path else "."
        sub = f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}{sep}{key}"
        # an absent field is reported at the line of the mapping that lacks it
        node = self._child_node(key) or self.node
        if isinstance(key, int):
            return Field(self.value[key], sub, self.source, node)
        return Field(self.mapping().get(key), sub, self.source, node)

    def with_value(self, value: Any) -> Field:
        """The same position holding a derived value (e.g. a mapping minus one key)."""
        return Field(value, self.path, self.source, self.node)

    def mapping(self, allowed: tuple[str, ...] | None = None) -> Mapping[str, Any]:
        if self.value is None:
            return {}
        if not isinstance(self.value, Mapping):
            raise self.fail(f"expected a mapping, got {self.value!r}")
        if allowed is not None:
            for k in self.value:
                if k not in allowed:
                    raise self.fail(f"unknown field {k!r} (allowed: {', '.join(allowed)})")
        return self.value

    def items(self) -> list[Field]:
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {self.value!r}")
        return [self.child(i) for i in range(len(self.value))]

    def present(self) -> bool:
        return self.value is not None

    def integer(self, lo: int, hi: int, default: int | None = None) -> int:
        if self.value is None:
            if default is None:
                raise self.fail("is required")
            return default
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {self.value!r}")
        if not lo <= self.value <= hi:
            raise self.fail(f"{self.value} is out of range [{lo}, {hi}]")
        return self.value

    def opt_integer(self, lo: int, hi: int) -> int | None:
        return None if self.value is None else self.integer(lo, hi)

    def number(self, lo: float, hi: float, default: float) -> float:
        if self.value is None:
            return default
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.fail(f"expected a number, got {self.value!r}")
        if not lo <= self.value <= hi:
            raise self.fail(f"{self.value} is out of range [{lo}, {hi}]")
        return float(self.value)

    def boolean(self, default: bool) -> bool:
        if self.value is None:
            return default
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {self.value!r}")
        return self.value

    def string(self, default: str | None = None) -> str:
        if self.value is None:
            if default is None:
                raise self.fail("is required")
            return default
        if not isinstance(self.value, str):
            raise self.fail(f"expected a string, got {self.value!r}")
        return self.value

    def choice(self, enum_type: type[E], default: E | None = None) -> E:
        if self.value is None:
            if default is None:
                raise self.fail("is required")
            return default
        for member in enum_type:
            if self.value == member.value:
                return member
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise self.fail(f"{self.value!r} is not one of: {allowed}")

    def mac(self) -> str:
        s = self.string()
        if not _MAC.match(s):
            raise self.fail(f"{s!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        return s.lower()

    def ipv6(self) -> ipaddress.IPv6Address:
        try:
            return ipaddress.IPv6Address(self.string())
        except ValueError:
            raise self.fail(f"{self.value!r} is not an IPv6 address") from None

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            return ipaddress.ip_network(self.string(), strict=True)
        except ValueError as e:
            raise self.fail(f"{self.value!r} is not a prefix ({e})") from None

    def ipv6_network(self) -> ipaddress.IPv6Network:
        net = self.network()
        if not isinstance(net, ipaddress.IPv6Network):
            raise self.fail(f"{self.value!r} is not an IPv6 prefix")
        return net

    def listed(self, parse: Callable[[Field], T]) -> tuple[T, ...]:
        return tuple(parse(f) for f in self.items())
