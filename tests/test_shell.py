"""`icpn shell`: p4runtime-shell's own venv is made lazily, and never when no switch answers.

Installing p4runtime-shell for real takes ~15 s and the package index; these tests replace the
installer by a fake that makes the files a venv would have, and count its calls.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pyctl.targets.bmv2.shell import READY, REQUIREMENT, ShellVenv, venv_dir

ROOT = Path(__file__).resolve().parent.parent


def test_venv_dir_follows_the_environment(tmp_path: Path) -> None:
    assert venv_dir({"ICPN_SHELL_VENV": str(tmp_path / "v")}) == tmp_path / "v"
    assert venv_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "icpn" / "shell-venv"
    assert venv_dir({}) == Path.home() / ".cache" / "icpn" / "shell-venv"


def _fake_create(calls: list[Path]) -> Callable[[Path], None]:
    def create(path: Path) -> None:
        calls.append(path)
        (path / "bin").mkdir(parents=True, exist_ok=True)
        (path / "bin" / "python").write_text("")

    return create


def test_the_venv_is_made_on_first_use_only(tmp_path: Path) -> None:
    calls: list[Path] = []
    logged: list[str] = []
    venv = ShellVenv(tmp_path / "shell-venv")
    assert not venv.path.exists()  # nothing before first use
    for _ in range(2):
        python = venv.ensure(create=_fake_create(calls), log=logged.append)
        assert python == venv.path / "bin" / "python"
    assert calls == [venv.path]
    assert len(logged) == 1 and REQUIREMENT in logged[0]  # the one progress line
    assert (venv.path / READY).read_text().strip() == REQUIREMENT


def test_a_half_made_or_outdated_venv_is_made_again(tmp_path: Path) -> None:
    calls: list[Path] = []
    venv = ShellVenv(tmp_path / "v")
    (venv.path / "bin").mkdir(parents=True)
    (venv.path / "bin" / "python").write_text("")  # an install that stopped before its marker
    venv.ensure(create=_fake_create(calls), log=lambda _: None)
    (venv.path / READY).write_text("p4runtime-shell==0.0.1\n")  # made for another release
    venv.ensure(create=_fake_create(calls), log=lambda _: None)
    assert calls == [venv.path, venv.path]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there now


def test_shell_without_a_switch_is_one_line_and_installs_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ICPN_SHELL_VENV": str(tmp_path / "v")}
    port = _closed_port()
    res = subprocess.run(
        [sys.executable, "-m", "pyctl.cli", "shell", f":{port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(
        f"icpn: error: SWITCH: no P4Runtime server answers on 127.0.0.1:{port}"
    )
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("switch", ["9559", ":port"])
def test_shell_rejects_a_malformed_switch(switch: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pyctl.cli import main

    assert main(["shell", switch]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("icpn: error: SWITCH:"), err
