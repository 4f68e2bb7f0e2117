"""Which optional toolchains (BMv2, p4c) and data planes this machine has, said in one line each."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Toolchain:
    simple_switch_grpc: str | None
    p4c: str | None
    root: bool

    @property
    def bmv2_reason(self) -> str | None:
        """None when BMv2 can run here, else why not."""
        if self.simple_switch_grpc is None:
            return "BMv2 simple_switch_grpc not installed (p4lang packages; see the Vagrantfile)"
        return None

    @property
    def p4c_reason(self) -> str | None:
        if self.p4c is None:
            return "p4c (p4c-bm2-ss) not installed; p4/build/ artefacts are used as committed"
        return None


def detect() -> Toolchain:
    return Toolchain(
        simple_switch_grpc=shutil.which("simple_switch_grpc"),
        p4c=shutil.which("p4c-bm2-ss") or shutil.which("p4c"),
        root=os.geteuid() == 0,
    )


def report() -> str:
    tc = detect()
    parts = [
        f"BMv2: {tc.simple_switch_grpc or 'absent'}",
        f"p4c: {tc.p4c or 'absent'}",
    ]
    line = "icpn toolchain: " + ", ".join(parts)
    if tc.bmv2_reason:
        line += " — the P4 data plane is skipped (" + tc.bmv2_reason + ")"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description="Report optional toolchains (BMv2, p4c).")
    ap.add_argument("--report", action="store_true", help="print one line about BMv2 and p4c")
    ap.parse_args()
    print(report())


if __name__ == "__main__":
    main()
