"""Generate ICPN's P4Runtime bindings (pyctl/p4rt/pb/*_pb2*.py) from the .proto files here.

Run by setup.py's build step (every `pip install`, editable or not) and by `make proto`; needs
grpcio-tools (a build requirement, and in the dev extra). The generated modules are not committed:
they are the output of the protoc that grpcio-tools bundles, so their protobuf runtime floor is
that protoc's version, which pyproject.toml pins (grpcio-tools==1.76.0: protoc 6.31.1, gencode
that protobuf 6.31.1 and later, including 7.x, import).

protoc writes absolute imports (`from p4.v1 import p4data_pb2`); they are rewritten to relative
ones so that the bindings live inside pyctl and never claim the top-level name `p4` (the
p4runtime distribution's). The descriptors keep their proto names (`p4.v1.WriteRequest`), so the
bytes on the wire are unchanged.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "pyctl" / "p4rt" / "pb"
PROTOS = ("p4/v1/p4runtime.proto", "p4/v1/p4data.proto", "p4/config/v1/p4info.proto",
          "p4/config/v1/p4types.proto")  # fmt: skip
# p4/v1/p4runtime.proto -> p4runtime_pb2; the package is flat, the names do not clash.
_IMPORT = re.compile(r"^from p4(?:\.\w+)+ import (\w+_pb2)", re.MULTILINE)


def outputs() -> list[Path]:
    """Every file the generator writes."""
    stems = [Path(p).stem + "_pb2" for p in PROTOS]
    names = [s + ext for s in stems for ext in (".py", ".pyi")] + ["p4runtime_pb2_grpc.py"]
    return [OUT / n for n in names]


def up_to_date() -> bool:
    sources = [HERE / p for p in PROTOS] + [Path(__file__).resolve()]
    newest = max(s.stat().st_mtime for s in sources)
    return all(o.exists() and o.stat().st_mtime >= newest for o in outputs())


def _includes() -> list[str]:
    """protoc include paths: google/protobuf/*.proto from grpcio-tools, google/rpc/*.proto from
    googleapis-common-protos (both PyPI packages that ship their .proto files)."""
    import google.rpc
    from grpc_tools import protoc

    rpc = Path(next(iter(google.rpc.__path__))).parent.parent
    return [f"-I{HERE}", f"-I{Path(protoc.__file__).parent / '_proto'}", f"-I{rpc}"]


def generate(force: bool = False) -> None:
    if not force and up_to_date():
        return
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.exit("icpn: generating the P4Runtime bindings needs grpcio-tools (pip install it)")
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["protoc", *_includes(), f"--python_out={tmp}", f"--pyi_out={tmp}"]
        argv.append(f"--grpc_python_out={tmp}")
        if protoc.main([*argv, *(str(HERE / p) for p in PROTOS)]) != 0:
            sys.exit("icpn: protoc failed on " + ", ".join(PROTOS))
        OUT.mkdir(parents=True, exist_ok=True)
        for proto in PROTOS:
            for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
                src = Path(tmp) / (proto.removesuffix(".proto") + suffix)
                dst = OUT / src.name
                if dst not in outputs():
                    continue  # an empty _grpc module of a service-less file
                dst.write_text(_IMPORT.sub(r"from . import \1", src.read_text()))


if __name__ == "__main__":
    generate(force="--force" in sys.argv)
    print(f"==> P4Runtime bindings in {OUT}")
