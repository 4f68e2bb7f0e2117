"""ICPN's P4Runtime bindings, the one import path for them in ICPN:

    from pyctl.p4rt.pb import p4info_pb2, p4runtime_pb2, p4runtime_pb2_grpc, status_pb2

The *_pb2 modules beside this file are generated at build time (every `pip install`, and
`make proto` in a source checkout) from p4/proto/ by p4/proto/generate.py with the protoc that
grpcio-tools bundles; they import with the protobuf that pyproject.toml allows (6.31.1 up to 8).
google.rpc's code and status come from googleapis-common-protos.
"""

from __future__ import annotations

from pyctl.errors import DataPlaneUnavailable


class BindingsUnavailable(DataPlaneUnavailable, ImportError):
    """The bindings cannot be imported; an ImportError too, so that callers that probe optional
    dependencies with `except ImportError` treat it as one."""


try:
    from google.rpc import code_pb2, status_pb2

    from pyctl.p4rt.pb import (
        p4data_pb2,
        p4info_pb2,
        p4runtime_pb2,
        p4runtime_pb2_grpc,
        p4types_pb2,
    )
except ImportError as e:
    raise BindingsUnavailable(
        f"the P4Runtime bindings do not import ({e}): pip install ICPN again (it brings "
        "protobuf>=6.31.1 and grpcio>=1.76), or `make deps proto` in a source checkout"
    ) from e

__all__ = [
    "BindingsUnavailable",
    "code_pb2",
    "p4data_pb2",
    "p4info_pb2",
    "p4runtime_pb2",
    "p4runtime_pb2_grpc",
    "p4types_pb2",
    "status_pb2",
]
