"""Where the P4 program and its build artefacts are, how to build them, and whether they are fresh.

``python -m pyctl.targets.bmv2.build`` compiles p4/icpn.p4 into p4/build/ (p4c-bm2-ss);
``--check`` compiles into a temporary directory and fails when the committed artefacts differ
(the JSON is compared without source positions, the P4Info as a protobuf message).

Every build also writes p4/build/sources.sha256: the SHA-256 of each P4 source and generated
include it was built from (`sha256sum` format). Comparing it with the sources needs no p4c, so a
P4 change committed without recompiling is caught on every machine (`source_drift`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pyctl import toolchain
from pyctl.errors import ICPNError

ROOT = Path(__file__).resolve().parents[3]
P4_DIR = ROOT / "p4"
BUILD_DIR = P4_DIR / "build"
MAIN = P4_DIR / "icpn.p4"
JSON = BUILD_DIR / "icpn.json"
P4INFO = BUILD_DIR / "icpn.p4info.txt"
SOURCES_SHA = BUILD_DIR / "sources.sha256"


def sources() -> list[Path]:
    return [MAIN, *sorted((P4_DIR / "include").glob("*.p4"))]


def source_digests(build_dir: Path = BUILD_DIR) -> str:
    """`sha256sum`-style lines for the P4 sources and the generated includes in `build_dir`,
    paths relative to p4/ (what p4/build/sources.sha256 holds)."""
    files = [*sources(), build_dir / "consts.p4", build_dir / "codes.p4"]
    lines = []
    for f in files:
        name = f"build/{f.name}" if f.parent == build_dir else str(f.relative_to(P4_DIR))
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {name}")
    return "\n".join(lines) + "\n"


def source_drift() -> list[str]:
    """P4 files that changed since p4/build/ was compiled ([] when the build is of these
    sources); needs no p4c."""
    if not SOURCES_SHA.exists():
        return [f"{SOURCES_SHA.relative_to(ROOT)} is missing: run `make -C p4`"]
    recorded = dict(_digest_items(SOURCES_SHA.read_text()))
    current = dict(_digest_items(source_digests()))
    drift = []
    for name in sorted(recorded.keys() | current.keys()):
        if name not in recorded:
            drift.append(f"p4/{name} is new since p4/build/ was compiled")
        elif name not in current:
            drift.append(f"p4/{name} is gone since p4/build/ was compiled")
        elif recorded[name] != current[name]:
            drift.append(f"p4/{name} changed since p4/build/ was compiled")
    return drift


def _digest_items(text: str) -> list[tuple[str, str]]:
    items = []
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        items.append((name, digest))
    return items


def render_constants(out_dir: Path = BUILD_DIR) -> None:
    """Write consts.p4 (pyctl.constants) and codes.p4 (codes.py) into out_dir."""
    from pyctl import constants
    from pyctl.targets.bmv2 import codes

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "consts.p4").write_text(constants.p4_header())
    (out_dir / "codes.p4").write_text(codes.p4_header())


def compile_p4(out_dir: Path, p4c: str | None = None) -> tuple[Path, Path]:
    """Compile p4/icpn.p4 into out_dir; return (json, p4info). ICPNError shows p4c output."""
    p4c = p4c or toolchain.detect().p4c
    if p4c is None:
        raise ICPNError(toolchain.detect().p4c_reason or "p4c not installed")
    render_constants(out_dir)
    out_json = out_dir / "icpn.json"
    out_info = out_dir / "icpn.p4info.txt"
    cmd = [
        p4c,
        "--arch",
        "v1model",
        "--std",
        "p4-16",
        "-I",
        str(out_dir),
        "-o",
        str(out_json),
        "--p4runtime-files",
        str(out_info),
        "icpn.p4",
    ]
    proc = subprocess.run(cmd, cwd=P4_DIR, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ICPNError(f"p4c failed on p4/icpn.p4:\n{proc.stdout}{proc.stderr}")
    (out_dir / SOURCES_SHA.name).write_text(source_digests(out_dir))
    return out_json, out_info


def _strip_positions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_positions(v) for k, v in node.items() if k != "source_info"}
    if isinstance(node, list):
        return [_strip_positions(v) for v in node]
    return node


def stale_reasons(built_json: Path, built_info: Path) -> list[str]:
    """How the committed artefacts differ from a fresh build ([] when up to date)."""
    from pyctl.p4rt import P4Info
    from pyctl.p4rt.pb import p4info_pb2

    reasons = []
    for committed in (JSON, P4INFO, BUILD_DIR / "consts.p4", BUILD_DIR / "codes.p4"):
        if not committed.exists():
            reasons.append(f"{committed.relative_to(ROOT)} is missing")
    if reasons:
        return reasons
    fresh = _strip_positions(json.loads(built_json.read_text()))
    old = _strip_positions(json.loads(JSON.read_text()))
    if fresh != old:
        reasons.append("p4/build/icpn.json differs from a fresh build of p4/icpn.p4")
    a: p4info_pb2.P4Info = P4Info.load(built_info).message
    b: p4info_pb2.P4Info = P4Info.load(P4INFO).message
    if a != b:
        reasons.append("p4/build/icpn.p4info.txt differs from a fresh build of p4/icpn.p4")
    from pyctl import constants
    from pyctl.targets.bmv2 import codes

    if (BUILD_DIR / "consts.p4").read_text() != constants.p4_header():
        reasons.append("p4/build/consts.p4 is not what pyctl/constants.py renders")
    if (BUILD_DIR / "codes.p4").read_text() != codes.p4_header():
        reasons.append("p4/build/codes.p4 is not what pyctl/targets/bmv2/codes.py renders")
    return reasons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build or check the ICPN P4 program's artefacts.")
    ap.add_argument("--check", action="store_true", help="fail if p4/build/ is not up to date")
    ap.add_argument(
        "--record-sources",
        action="store_true",
        help="write p4/build/sources.sha256 for the sources p4/build/ was just compiled from",
    )
    args = ap.parse_args(argv)
    if args.record_sources:
        SOURCES_SHA.write_text(source_digests())
        return 0
    try:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="icpn-p4-") as tmp:
                built = compile_p4(Path(tmp))
                reasons = stale_reasons(*built)
            for r in reasons:
                print(f"icpn: {r}", file=sys.stderr)
            if reasons:
                print("icpn: run `make -C p4` and commit p4/build/", file=sys.stderr)
                return 1
            print("p4/build/ is up to date")
            return 0
        out_json, out_info = compile_p4(BUILD_DIR)
        print(f"built {out_json.relative_to(ROOT)} and {out_info.relative_to(ROOT)}")
        return 0
    except ICPNError as e:
        print(f"icpn: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
