"""Which optional toolchains (BMv2, p4c, tshark) this machine has, said in one line."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass

from pyctl import kernelfeatures


@dataclass(frozen=True)
class Toolchain:
    simple_switch_grpc: str | None
    p4c: str | None
    tshark: str | None
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
        tshark=shutil.which("tshark"),
        root=os.geteuid() == 0,
    )


def report() -> str:
    tc = detect()
    parts = [
        f"BMv2: {tc.simple_switch_grpc or 'absent'}",
        f"p4c: {tc.p4c or 'absent'}",
        f"tshark: {tc.tshark or 'absent'}",
    ]
    line = "icpn toolchain: " + ", ".join(parts)
    if tc.bmv2_reason:
        line += " — the P4 data plane is skipped (" + tc.bmv2_reason + ")"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Report optional toolchains (BMv2, p4c, tshark) and kernel features."
    )
    ap.add_argument("--report", action="store_true", help="print one line about each")
    ap.parse_args()
    print(report())
    print("icpn " + kernelfeatures.summary())


if __name__ == "__main__":
    main()
