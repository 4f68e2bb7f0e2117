"""Errors of the P4Runtime client: each names the switch, the entity and, when known, the field."""

from __future__ import annotations

from pyctl.errors import ICPNError


class P4RuntimeError(ICPNError):
    """A request the switch refused, or one the client refused to send.

    `entity` says which table entry / clone session / counter (with its key), `field` the match
    field or action parameter at fault when the error is about one, `code` the gRPC status name.
    """

    def __init__(
        self,
        message: str,
        *,
        switch: str | None = None,
        entity: str | None = None,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        self.switch = switch
        self.entity = entity
        self.field = field
        self.code = code
        parts = []
        if switch:
            parts.append(f"switch {switch}")
        if entity:
            parts.append(entity)
        if field:
            parts.append(f"field {field!r}")
        where = ": ".join(parts)
        text = f"{where}: {message}" if where else message
        if code:
            text += f" ({code})"
        super().__init__(text)


class P4InfoError(P4RuntimeError):
    """A name that the P4Info does not have, or a value that does not fit its field."""


class NotPrimaryError(P4RuntimeError):
    """Another controller holds the primary role on this switch (arbitration lost)."""
