"""Loaded BPF objects, programs and maps over the libbpf binding (pyctl.targets.ebpf.libbpf):
open and load an object, run a program with BPF_PROG_TEST_RUN, read its JIT image, typed map
access and ring buffers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyctl.errors import ICPNError
from pyctl.targets.ebpf.libbpf import (
    _PERCPU_TYPES,
    _SAMPLE_FN,
    BPF_ANY,
    BPF_F_TEST_XDP_LIVE_FRAMES,
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_RINGBUF,
    TEST_RUN_DATA_OUT,
    VERIFIER_LOG_SIZE,
    Buffer,
    _errno_text,
    _libbpf,
    _LineInfo,
    _permission_hint,
    _ProgInfo,
    _require_bpffs,
    _TestRunOpts,
    trim_verifier_log,
)


@dataclass(frozen=True)
class TestRun:
    """What one BPF_PROG_TEST_RUN returned."""

    retval: int
    data: bytes
    duration_ns: int


def xdp_md(data_len: int, ingress_ifindex: int) -> bytes:
    """A BPF_PROG_TEST_RUN context for an XDP program: the frame arriving on `ingress_ifindex`
    (of the calling thread's namespace). struct xdp_md: data, data_end, data_meta,
    ingress_ifindex, rx_queue_index, egress_ifindex."""
    return struct.pack("6I", 0, data_len, 0, ingress_ifindex, 0, 0)


@dataclass
class JitLine:
    """Where the JIT put the code of one source line."""

    address: int
    file: str
    line: int
    source: str


@dataclass
class JitImage:
    """A loaded program's machine code: its functions as (kernel address, length, offset in
    `code`) and the source line each stretch of code came from (BTF line info)."""

    code: bytes
    funcs: list[tuple[int, int, int]]
    lines: list[JitLine]


@dataclass
class Program:
    name: str
    fd: int
    prog_type: int
    _ptr: int = field(repr=False)

    def test_run(
        self,
        data: bytes,
        ctx: bytes | None = None,
        out_size: int = TEST_RUN_DATA_OUT,
        repeat: int = 1,
    ) -> TestRun:
        """Run the program on `data`; `repeat` > 1 runs it again on the buffer the last run left.

        A program that changes the frame sees its own output on the next run, so repeat > 1 only
        measures what it claims on a path that leaves the frame as it found it. `ctx` is the
        program's context to start from (e.g. the first fields of a __sk_buff, to set its mark);
        fields the kernel does not let a test set must be zero. The duration is per run.
        """
        din = ctypes.create_string_buffer(data, len(data))
        dout = ctypes.create_string_buffer(out_size)
        opts = _TestRunOpts(
            sz=ctypes.sizeof(_TestRunOpts),
            data_in=ctypes.cast(din, ctypes.c_void_p),
            data_out=ctypes.cast(dout, ctypes.c_void_p),
            data_size_in=len(data),
            data_size_out=out_size,
            repeat=repeat,
        )
        if ctx is not None:
            cin = ctypes.create_string_buffer(ctx, len(ctx))
            opts.ctx_in = ctypes.cast(cin, ctypes.c_void_p)
            opts.ctx_size_in = len(ctx)
        self._run(opts, f"on a {len(data)}-byte frame")
        return TestRun(opts.retval, dout.raw[: opts.data_size_out], opts.duration)

    def send_live(self, data: bytes, ifindex: int, count: int, batch: int = 64) -> int:
        """Run an XDP program `count` times in live-frames mode on copies of `data` arriving on
        `ifindex` (of the calling thread's namespace); XDP_TX and XDP_REDIRECT really transmit.

        This is the kernel's own packet generator (BPF_F_TEST_XDP_LIVE_FRAMES, Linux >= 5.18).
        Returns the kernel's mean nanoseconds per frame.
        """
        din = ctypes.create_string_buffer(data, len(data))
        ctx = xdp_md(len(data), ifindex)
        cin = ctypes.create_string_buffer(ctx, len(ctx))
        opts = _TestRunOpts(
            sz=ctypes.sizeof(_TestRunOpts),
            data_in=ctypes.cast(din, ctypes.c_void_p),
            data_size_in=len(data),
            ctx_in=ctypes.cast(cin, ctypes.c_void_p),
            ctx_size_in=len(ctx),
            repeat=count,
            flags=BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size=batch,
        )
        self._run(opts, f"in live-frames mode on ifindex {ifindex}")
        return int(opts.duration)

    def _run(self, opts: _TestRunOpts, what: str) -> None:
        rc = _libbpf().lib.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts))
        if rc != 0:
            raise ICPNError(
                f"BPF_PROG_TEST_RUN of {self.name!r} {what} failed: "
                f"{_errno_text(rc)}{_permission_hint(rc)}"
            )

    def jit_image(self) -> JitImage:
        """The JIT-ed code with its kernel addresses and source lines (for profiling: a perf
        sample's address names the line it was in). Needs root and an object built with -g."""
        lib = _libbpf().lib
        info = _ProgInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        rc = lib.bpf_obj_get_info_by_fd(self.fd, ctypes.byref(info), ctypes.byref(size))
        if rc != 0:
            raise ICPNError(f"program {self.name!r}: no program info: {_errno_text(rc)}")
        code = ctypes.create_string_buffer(info.jited_prog_len)
        ksyms = (ctypes.c_uint64 * info.nr_jited_ksyms)()
        lens = (ctypes.c_uint32 * info.nr_jited_func_lens)()
        lines = (_LineInfo * info.nr_line_info)()
        jlines = (ctypes.c_uint64 * info.nr_jited_line_info)()
        want = _ProgInfo(
            jited_prog_len=info.jited_prog_len,
            jited_prog_insns=ctypes.addressof(code),
            nr_jited_ksyms=info.nr_jited_ksyms,
            nr_jited_func_lens=info.nr_jited_func_lens,
            jited_ksyms=ctypes.addressof(ksyms),
            jited_func_lens=ctypes.addressof(lens),
            nr_line_info=info.nr_line_info,
            line_info=ctypes.addressof(lines),
            line_info_rec_size=ctypes.sizeof(_LineInfo),
            jited_line_info=ctypes.addressof(jlines),
            nr_jited_line_info=info.nr_jited_line_info,
            jited_line_info_rec_size=8,
        )
        size = ctypes.c_uint32(ctypes.sizeof(want))
        rc = lib.bpf_obj_get_info_by_fd(self.fd, ctypes.byref(want), ctypes.byref(size))
        if rc != 0:
            raise ICPNError(f"program {self.name!r}: no JIT image: {_errno_text(rc)}")
        btf = lib.btf__load_from_kernel_by_id(info.btf_id) if info.btf_id else None

        def name(off: int) -> str:
            raw = lib.btf__name_by_offset(btf, off) if btf else None
            return raw.decode(errors="replace") if raw else ""

        try:
            where = [
                JitLine(
                    jlines[k],
                    name(li.file_name_off).rsplit("/", 1)[-1],
                    li.line_col >> 10,
                    name(li.line_off).strip(),
                )
                for k, li in enumerate(lines[: min(len(lines), len(jlines))])
            ]
        finally:
            if btf:
                lib.btf__free(btf)
        funcs, off = [], 0
        for k in range(info.nr_jited_ksyms):
            funcs.append((ksyms[k], lens[k], off))
            off += lens[k]
        return JitImage(code.raw, funcs, sorted(where, key=lambda w: w.address))

    def pin(self, path: Path) -> None:
        _require_bpffs(path)
        rc = _libbpf().lib.bpf_program__pin(self._ptr, str(path).encode())
        if rc != 0:
            raise ICPNError(f"cannot pin program {self.name!r} at {path}: {_errno_text(rc)}")


@dataclass
class Map:
    """A loaded map. Keys and values are bytes or ctypes objects of exactly the map's sizes.

    Per-CPU maps take and return one value per possible CPU, each padded to 8 bytes.
    """

    name: str
    fd: int
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    _ptr: int = field(repr=False)

    @property
    def percpu(self) -> bool:
        return self.map_type in _PERCPU_TYPES

    @property
    def array(self) -> bool:
        """Keyed by index, every entry there (an entry is cleared by writing zeros)."""
        return self.map_type in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY)

    @property
    def buffer_size(self) -> int:
        if self.percpu:
            return ((self.value_size + 7) // 8 * 8) * _libbpf().lib.libbpf_num_possible_cpus()
        return self.value_size

    def _buf(self, what: str, data: Buffer, size: int) -> ctypes.Array[ctypes.c_char]:
        raw = bytes(data)
        if len(raw) != size:
            raise ICPNError(f"map {self.name!r}: {what} is {len(raw)} bytes, the map wants {size}")
        return ctypes.create_string_buffer(raw, size)

    def _key(self, key: Buffer | None) -> ctypes.c_void_p | None:
        if key is None or self.key_size == 0:
            return None
        return ctypes.cast(self._buf("key", key, self.key_size), ctypes.c_void_p)

    def update(
        self,
        key: Buffer | None,
        value: Buffer,
        flags: int = BPF_ANY,
    ) -> None:
        vbuf = self._buf("value", value, self.buffer_size)
        rc = _libbpf().lib.bpf_map_update_elem(self.fd, self._key(key), vbuf, flags)
        if rc != 0:
            raise ICPNError(f"map {self.name!r}: update failed: {_errno_text(rc)}")

    def lookup(self, key: Buffer | None) -> bytes | None:
        vbuf = ctypes.create_string_buffer(self.buffer_size)
        rc = _libbpf().lib.bpf_map_lookup_elem(self.fd, self._key(key), vbuf)
        if rc == -errno.ENOENT:
            return None
        if rc != 0:
            raise ICPNError(f"map {self.name!r}: lookup failed: {_errno_text(rc)}")
        return vbuf.raw

    def delete(self, key: Buffer) -> bool:
        """Delete `key`; False when it was not there."""
        rc = _libbpf().lib.bpf_map_delete_elem(self.fd, self._key(key))
        if rc == -errno.ENOENT:
            return False
        if rc != 0:
            raise ICPNError(f"map {self.name!r}: delete failed: {_errno_text(rc)}")
        return True

    def pop(self) -> bytes | None:
        """Pop from a queue/stack map, or take-and-delete; None when empty."""
        vbuf = ctypes.create_string_buffer(self.buffer_size)
        rc = _libbpf().lib.bpf_map_lookup_and_delete_elem(self.fd, None, vbuf)
        if rc == -errno.ENOENT:
            return None
        if rc != 0:
            raise ICPNError(f"map {self.name!r}: pop failed: {_errno_text(rc)}")
        return vbuf.raw

    def keys(self) -> Iterator[bytes]:
        lib = _libbpf().lib
        cur: ctypes.Array[ctypes.c_char] | None = None
        while True:
            nxt = ctypes.create_string_buffer(self.key_size)
            rc = lib.bpf_map_get_next_key(self.fd, cur, nxt)
            if rc == -errno.ENOENT:
                return
            if rc != 0:
                raise ICPNError(f"map {self.name!r}: get_next_key failed: {_errno_text(rc)}")
            yield nxt.raw
            cur = nxt

    def clear(self) -> None:
        """Delete every key (hash and LPM maps; arrays cannot delete, overwrite them instead)."""
        for k in list(self.keys()):
            self.delete(k)

    def pin(self, path: Path) -> None:
        _require_bpffs(path)
        rc = _libbpf().lib.bpf_map__pin(self._ptr, str(path).encode())
        if rc != 0:
            raise ICPNError(f"cannot pin map {self.name!r} at {path}: {_errno_text(rc)}")


class RingBuffer:
    """A BPF_MAP_TYPE_RINGBUF map read with libbpf's ring_buffer: `poll` calls `on_record`
    with the bytes of every record committed so far (on the polling thread)."""

    def __init__(self, ring: Map, on_record: Callable[[bytes], None]) -> None:
        if ring.map_type != BPF_MAP_TYPE_RINGBUF:
            raise ICPNError(f"map {ring.name!r} is not a ring buffer")
        self.name = ring.name

        def sample(_ctx: int | None, data: int | None, size: int) -> int:
            on_record(ctypes.string_at(data, size) if data else b"")
            return 0

        self._cb = _SAMPLE_FN(sample)  # kept alive as long as libbpf may call it
        ptr = _libbpf().lib.ring_buffer__new(ring.fd, self._cb, None, None)
        if not ptr:
            raise ICPNError(f"ring buffer {ring.name!r}: {os.strerror(ctypes.get_errno())}")
        self._ptr: int | None = ptr

    def poll(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for records and consume them; how many were consumed."""
        if self._ptr is None:
            raise ICPNError(f"ring buffer {self.name!r} is closed")
        rc = int(_libbpf().lib.ring_buffer__poll(self._ptr, timeout_ms))
        if rc < 0 and rc != -errno.EINTR:
            raise ICPNError(f"ring buffer {self.name!r}: poll failed: {_errno_text(rc)}")
        return max(rc, 0)

    def close(self) -> None:
        if self._ptr is not None:
            _libbpf().lib.ring_buffer__free(self._ptr)
            self._ptr = None


class BPFObject:
    """An ELF object opened with libbpf; `load()` creates its maps and verifies its programs."""

    def __init__(self, path: str | Path) -> None:
        self._ptr: int | None = None
        self.path = Path(path)
        lib = _libbpf()
        if not self.path.is_file():
            raise ICPNError(f"BPF object {self.path} does not exist (run `make build`)")
        lib.log.clear()
        ptr = lib.lib.bpf_object__open_file(str(self.path).encode(), None)
        err = ctypes.get_errno()
        log = list(lib.log)
        if not ptr:
            detail = trim_verifier_log(log, 4) or _errno_text(err)
            raise ICPNError(f"cannot open BPF object {self.path}: {detail}")
        self._ptr = ptr
        self.loaded = False

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise ICPNError(f"BPF object {self.path} is closed")
        return self._ptr

    def load(self) -> None:
        """Create the maps and load the programs; a verifier rejection raises ICPNError with
        the program's name and the last lines of its verifier log."""
        lib = _libbpf()
        bufs = {}
        ptr = None
        while ptr := lib.lib.bpf_object__next_program(self.ptr, ptr):
            bufs[ptr] = ctypes.create_string_buffer(VERIFIER_LOG_SIZE)
            lib.lib.bpf_program__set_log_buf(ptr, bufs[ptr], VERIFIER_LOG_SIZE)
        lib.log.clear()
        rc = lib.lib.bpf_object__load(self.ptr)
        log = list(lib.log)
        if rc == 0:
            self.loaded = True
            return
        hint = _permission_hint(rc)
        msg = f"loading {self.path.name} failed: {_errno_text(rc)}{hint}"
        for prog, buf in bufs.items():
            text = buf.value.decode(errors="replace")
            if text.strip():
                name = lib.lib.bpf_program__name(prog).decode()
                tail = trim_verifier_log([text])
                msg = f"loading {self.path.name}: the verifier rejected program {name!r}: "
                msg += f"{_errno_text(rc)}\n{tail}"
                break
        else:
            tail = trim_verifier_log(log, 4)
            if tail and not hint:
                msg += "\n" + tail
        raise ICPNError(msg)

    def set_max_entries(self, name: str, n: int) -> None:
        """Size a map before `load()` (the object's sizes are the most any node needs)."""
        lib = _libbpf().lib
        ptr = lib.bpf_object__find_map_by_name(self.ptr, name.encode())
        if not ptr:
            raise ICPNError(f"{self.path.name}: no map {name!r}")
        rc = lib.bpf_map__set_max_entries(ptr, n)
        if rc != 0:
            raise ICPNError(f"{self.path.name}: map {name!r}: max_entries {n}: {_errno_text(rc)}")

    def program(self, name: str) -> Program:
        lib = _libbpf().lib
        ptr = lib.bpf_object__find_program_by_name(self.ptr, name.encode())
        if not ptr:
            raise ICPNError(f"{self.path.name}: no program {name!r} (have: {self.program_names()})")
        return Program(name, lib.bpf_program__fd(ptr), lib.bpf_program__type(ptr), ptr)

    def program_names(self) -> list[str]:
        lib, out, ptr = _libbpf().lib, [], None
        while ptr := lib.bpf_object__next_program(self.ptr, ptr):
            out.append(lib.bpf_program__name(ptr).decode())
        return out

    def map(self, name: str) -> Map:
        lib = _libbpf().lib
        ptr = lib.bpf_object__find_map_by_name(self.ptr, name.encode())
        if not ptr:
            raise ICPNError(f"{self.path.name}: no map {name!r}")
        return Map(
            name,
            lib.bpf_map__fd(ptr),
            lib.bpf_map__type(ptr),
            lib.bpf_map__key_size(ptr),
            lib.bpf_map__value_size(ptr),
            lib.bpf_map__max_entries(ptr),
            ptr,
        )

    def close(self) -> None:
        if self._ptr is not None:
            _libbpf().lib.bpf_object__close(self._ptr)
            self._ptr = None

    def __enter__(self) -> BPFObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
