"""Exceptions that reach the user as one clear line (the CLI prints them without a traceback)."""


class ICPNError(Exception):
    """Base of every error the toolkit reports to the user."""


class ConfigError(ICPNError):
    """A node, topology or vector file has a field with a wrong value.

    The message names where (file and field path) and the offending value.
    """

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class PacketError(ICPNError):
    """A packet is malformed in a way that the caller asked to be told about."""


class DataPlaneUnavailable(ICPNError):
    """A data plane cannot run on this machine; the message says why in one line."""
