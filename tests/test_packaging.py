"""ICPN as a user installs it: `pip install .` into a fresh venv, on current protobuf.

The slow test builds a wheel from a copy of this checkout (so the checkout gets no build/ or
egg-info) and installs it, with its dependencies from the package index, into a venv of its own;
nothing of the developer's venv is visible there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pyctl.p4rt.pb import p4info_pb2, p4runtime_pb2, p4runtime_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
# What a checkout holds that is no part of the package's sources (or is big and rebuilt).
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".stamps", "build", "runs", "*.egg-info", "__pycache__", "*_pb2*", ".*cache"
)


def test_bindings_keep_the_p4runtime_wire_names_and_bytes() -> None:
    # The bindings live in pyctl.p4rt.pb, but the proto names must stay p4.v1 / p4.config.v1:
    # a server routes the RPC by '/p4.v1.P4Runtime/Write' and Any-packed messages by full name.
    assert p4runtime_pb2.WriteRequest.DESCRIPTOR.full_name == "p4.v1.WriteRequest"
    assert p4info_pb2.P4Info.DESCRIPTOR.full_name == "p4.config.v1.P4Info"
    service = p4runtime_pb2.DESCRIPTOR.services_by_name["P4Runtime"]
    assert service.full_name == "p4.v1.P4Runtime"
    assert {m.name for m in service.methods} >= {"Write", "Read", "StreamChannel"}
    assert hasattr(p4runtime_pb2_grpc, "P4RuntimeStub")
    # Worked by hand from the protobuf wire format: device_id is field 1 (varint), so the tag is
    # (1 << 3) | 0 = 0x08; election_id is field 3 (length-delimited): tag (3 << 3) | 2 = 0x1a,
    # length 2, then Uint128.low (field 2, varint): tag 0x10 and the value 5.
    req = p4runtime_pb2.WriteRequest(device_id=1, election_id=p4runtime_pb2.Uint128(low=5))
    assert req.SerializeToString() == b"\x08\x01\x1a\x02\x10\x05"


def test_icpn_does_not_claim_the_top_level_name_p4() -> None:
    # The p4runtime distribution owns `p4`; ICPN's bindings must not shadow or clash with it.
    import pyctl.p4rt.pb as pb

    assert Path(pb.__file__).resolve().parent == ROOT / "pyctl" / "p4rt" / "pb"
    for generated in Path(pb.__file__).parent.glob("*_pb2*.py"):
        assert "from p4." not in generated.read_text(), generated.name


def test_pip_install_into_a_fresh_venv_runs_the_vectors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, icpn = venv / "bin" / "python", venv / "bin" / "icpn"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]

    # No source tree on the path: run from an empty directory.
    work = tmp_path / "work"
    work.mkdir()
    probe = subprocess.run(
        [str(py), "-c", "import google.protobuf, pyctl; print(google.protobuf.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=True,
    )
    major = int(probe.stdout.split(".")[0])
    assert major >= 5, probe.stdout  # the floor; pyproject asks for >= 6.31.1
    shell_pins = subprocess.run(
        [str(py), "-c", "import p4runtime_sh"], capture_output=True, env=env, cwd=work
    )
    assert shell_pins.returncode != 0  # p4runtime-shell (protobuf<3.21) stays out of this venv

    # The Wireshark dissector is package data: the installed copy, not the checkout's.
    lua = subprocess.run(
        [str(icpn), "wireshark", "--path"], capture_output=True, text=True, env=env, check=True
    )
    lua_path = Path(lua.stdout.strip())
    assert lua_path.is_file() and venv in lua_path.parents, lua.stdout

    vectors = subprocess.run(
        [str(icpn), "vectors", "--dataplane", "reference"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=300,
    )
    assert vectors.returncode == 0, vectors.stdout[-2000:] + vectors.stderr[-2000:]
    summary = vectors.stdout.strip().splitlines()[-1]
    # As many vectors ran from the installed copy as the checkout holds (nodes/ are not vectors).
    in_checkout = [
        p for p in (ROOT / "tests" / "vectors").rglob("*.yaml") if "nodes" not in p.parts
    ]
    assert summary.startswith(f"vectors: {len(in_checkout)} passed, 0 failed"), summary
