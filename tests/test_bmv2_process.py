"""simple_switch_grpc command lines (no BMv2 needed: fake binaries stand in for it)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pyctl.targets.bmv2.process import SWITCH_ENV, SwitchSpec


def _fake_switch(path: Path, help_text: str) -> Path:
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{help_text}\nEOF\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_icpn_simple_switch_picks_the_binary_and_its_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _fake_switch(tmp_path / "full", "  --notifications-addr arg    nanomsg address")
    bare = _fake_switch(tmp_path / "bare", "  --thrift-port arg")
    monkeypatch.setenv(SWITCH_ENV, str(full))
    argv = SwitchSpec(name="s1", ports={1: "v1"}, run_dir=tmp_path).argv()
    assert argv[0] == str(full)
    assert "--notifications-addr" in argv
    # a BMv2 built without nanomsg (e.g. the no-logging benchmark build) has no notifications
    monkeypatch.setenv(SWITCH_ENV, str(bare))
    argv = SwitchSpec(name="s1", ports={1: "v1"}, run_dir=tmp_path).argv()
    assert argv[0] == str(bare)
    assert "--notifications-addr" not in argv
    assert argv[argv.index("-i") + 1] == "1@v1"
    assert argv[argv.index("--log-level") + 1] == "off"


def test_without_the_variable_the_path_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SWITCH_ENV, raising=False)
    assert SwitchSpec(name="s1", ports={}, run_dir=tmp_path).binary == "simple_switch_grpc"
