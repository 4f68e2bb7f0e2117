"""simple_switch_grpc processes: start (quiet unless asked), wait for gRPC, stop, restart.

Each switch gets its own gRPC and Thrift ports and notifications socket, so several run at once;
logs and pcaps go under a per-run directory. The binary is `simple_switch_grpc` from PATH, or the
one ICPN_SIMPLE_SWITCH names (e.g. a BMv2 built without logging macros for benchmarks).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pyctl.errors import DataPlaneUnavailable, ICPNError
from pyctl.targets.bmv2 import codes

SWITCH_ENV = "ICPN_SIMPLE_SWITCH"


def default_binary() -> str:
    return os.environ.get(SWITCH_ENV) or "simple_switch_grpc"


@functools.cache
def _has_option(exe: str, option: str) -> bool:
    """Whether `exe --help` lists `option` (a BMv2 built without nanomsg has no notifications)."""
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in out.stdout + out.stderr


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SwitchSpec:
    """How to run one simple_switch_grpc."""

    name: str
    ports: dict[int, str]  # BMv2 port number -> interface name
    run_dir: Path  # logs, pcaps, notifications socket
    device_id: int = 0
    grpc_port: int = field(default_factory=free_tcp_port)
    thrift_port: int = field(default_factory=free_tcp_port)
    cpu_port: int = codes.CPU_PORT
    log: bool = False  # --log-file <run_dir>/<name>.log at debug level
    pcap: bool = False  # --pcap <run_dir>/pcap
    netns: str | None = None  # run inside this network namespace (its lo must be up)
    binary: str = field(default_factory=default_binary)

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def argv(self) -> list[str]:
        exe = shutil.which(self.binary) or self.binary
        args = [exe, "--device-id", str(self.device_id)]
        for port, ifname in sorted(self.ports.items()):
            args += ["-i", f"{port}@{ifname}"]
        if _has_option(exe, "--thrift-port"):  # a build without Thrift has no such option
            args += ["--thrift-port", str(self.thrift_port)]
        if _has_option(exe, "--notifications-addr"):
            args += ["--notifications-addr", f"ipc://{self.run_dir / 'notifications.ipc'}"]
        if self.log:
            args += ["--log-file", str(self.run_dir / self.name), "--log-level", "debug"]
            args += ["--log-flush"]
        else:
            # BMv2's default level is trace: every packet's messages get formatted (into a null
            # sink) unless the level is off, which costs about half of the switch's time.
            args += ["--log-level", "off"]
        if self.pcap:
            args += ["--pcap", str(self.run_dir / "pcap")]
        args += ["--no-p4", "--", "--grpc-server-addr", self.grpc_address]
        args += ["--cpu-port", str(self.cpu_port)]
        if self.netns is not None:
            args = ["ip", "netns", "exec", self.netns, *args]
        return args


class SwitchProcess:
    """One running simple_switch_grpc."""

    def __init__(self, spec: SwitchSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def output_path(self) -> Path:
        return self.spec.run_dir / f"{self.spec.name}.out"

    def start(self, timeout: float = 20.0) -> None:
        """Start the switch and return once its gRPC server answers."""
        if self.alive():
            return
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        if self.spec.pcap:
            (self.spec.run_dir / "pcap").mkdir(exist_ok=True)
        try:
            out = self.output_path.open("ab")
        except OSError as e:
            raise ICPNError(f"cannot write {self.output_path}: {e.strerror}") from None
        try:
            self.proc = subprocess.Popen(
                self.spec.argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        except FileNotFoundError:
            raise DataPlaneUnavailable(
                f"{self.spec.binary} not found (BMv2 simple_switch_grpc not installed)"
            ) from None
        finally:
            out.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ICPNError(
                    f"switch {self.spec.name}: simple_switch_grpc exited "
                    f"({self._exit_text()}); last output:\n{self.tail()}"
                )
            channel = grpc.insecure_channel(self.spec.grpc_address)
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                pass
            finally:
                channel.close()
            if time.monotonic() > deadline:
                self.kill()
                raise ICPNError(
                    f"switch {self.spec.name}: gRPC port {self.spec.grpc_port} did not answer "
                    f"within {timeout:g} s; last output:\n{self.tail()}"
                )

    def _exit_text(self) -> str:
        if self.proc is None or self.proc.returncode is None:
            return "running"
        rc = self.proc.returncode
        return f"signal {-rc}" if rc < 0 else f"exit status {rc}"

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.output_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        """SIGKILL (what a crash looks like to the controller)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self, timeout: float = 20.0) -> None:
        self.stop()
        self.start(timeout)
