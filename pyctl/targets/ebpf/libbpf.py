"""A small ctypes binding to libbpf.so.1: open/load objects, typed map access, BPF_PROG_TEST_RUN.

Only what the eBPF data plane needs. Errors are `ICPNError`s that say what to do (run as root,
mount bpffs, the verifier's own last lines) instead of a bare errno.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctl.errors import ICPNError

# What map keys and values may be given as: raw bytes or a ctypes object of the right size.
Buffer = bytes | ctypes.Structure | ctypes.Array[Any]

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_RINGBUF = 27
_PERCPU_TYPES = (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH)

BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_XDP = 6

BTF_KIND_STRUCT = 4

# XDP test runs get a 4 KiB page: 256 bytes headroom and the skb_shared_info tail are not data.
TEST_RUN_DATA_OUT = 4096
BPFFS = Path("/sys/fs/bpf")
VERIFIER_TAIL_LINES = 12
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1  # <linux/bpf.h>
# Per-program verifier log on failure; the kernel (>= 6.4) keeps the tail of a longer log.
VERIFIER_LOG_SIZE = 1 << 20
_BPF_FS_MAGIC = 0xCAFE4A11


class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts of <bpf/bpf.h> (libbpf >= 0.7)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info (<linux/bpf.h>) up to the JIT's line info."""

    _u32, _u64 = ctypes.c_uint32, ctypes.c_uint64
    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", _u32),
        ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64),
        ("xlated_prog_insns", _u64),
        ("load_time", _u64),
        ("created_by_uid", _u32),
        ("nr_map_ids", _u32),
        ("map_ids", _u64),
        ("name", ctypes.c_char * 16),
        ("ifindex", _u32),
        ("gpl_compatible", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32),
        ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64),
        ("jited_func_lens", _u64),
        ("btf_id", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("nr_func_info", _u32),
        ("nr_line_info", _u32),
        ("line_info", _u64),
        ("jited_line_info", _u64),
        ("nr_jited_line_info", _u32),
        ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32),
    ]


class _LineInfo(ctypes.Structure):
    """struct bpf_line_info."""

    _fields_ = [
        ("insn_off", ctypes.c_uint32),
        ("file_name_off", ctypes.c_uint32),
        ("line_off", ctypes.c_uint32),
        ("line_col", ctypes.c_uint32),
    ]


class _BTFType(ctypes.Structure):
    """struct btf_type of <linux/btf.h>; members (struct btf_member) follow it."""

    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class _BTFMember(ctypes.Structure):
    _fields_ = [
        ("name_off", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
    ]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# ring_buffer_sample_fn: int (*)(void *ctx, void *data, size_t size)
_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class _Libbpf:
    """The loaded library with prototypes set, and the sink its log callback writes into.

    libbpf has one process-wide print callback; it runs on the thread that called into libbpf,
    so each thread captures its own lines (objects load on several threads at once: a load is
    mostly the kernel's verifier, and ctypes lets other threads run meanwhile).
    """

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError as e:
            raise ICPNError(f"cannot load libbpf.so.1 (install libbpf1): {e}") from None
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.vsnprintf.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_void_p,
        ]
        self._local = threading.local()
        self._print = _PRINT_FN(self._on_print)
        self._prototypes()
        self.lib.libbpf_set_print(self._print)

    def _on_print(self, level: int, fmt: bytes, args: int) -> int:
        # va_list decays to a pointer on x86-64 and aarch64, which vsnprintf takes as is.
        buf = ctypes.create_string_buffer(4096)
        self.libc.vsnprintf(buf, len(buf), fmt, args)
        self.log.append(buf.value.decode(errors="replace"))
        return 0

    @property
    def log(self) -> list[str]:
        """This thread's captured libbpf lines."""
        lines: list[str] | None = getattr(self._local, "log", None)
        if lines is None:
            lines = self._local.log = []
        return lines

    def _prototypes(self) -> None:
        lib, vp, i, u32, cp = (
            self.lib,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_uint32,
            ctypes.c_char_p,
        )
        protos: dict[str, tuple[object, list[object]]] = {
            "libbpf_set_print": (vp, [_PRINT_FN]),
            "bpf_object__open_file": (vp, [cp, vp]),
            "bpf_object__load": (i, [vp]),
            "bpf_object__close": (None, [vp]),
            "bpf_object__find_program_by_name": (vp, [vp, cp]),
            "bpf_object__find_map_by_name": (vp, [vp, cp]),
            "bpf_object__next_program": (vp, [vp, vp]),
            "bpf_object__next_map": (vp, [vp, vp]),
            "bpf_program__fd": (i, [vp]),
            "bpf_program__name": (cp, [vp]),
            "bpf_program__type": (i, [vp]),
            "bpf_program__pin": (i, [vp, cp]),
            "bpf_program__set_log_buf": (i, [vp, vp, ctypes.c_size_t]),
            "bpf_program__log_buf": (vp, [vp, ctypes.POINTER(ctypes.c_size_t)]),
            "bpf_map__fd": (i, [vp]),
            "bpf_map__name": (cp, [vp]),
            "bpf_map__type": (i, [vp]),
            "bpf_map__key_size": (u32, [vp]),
            "bpf_map__value_size": (u32, [vp]),
            "bpf_map__max_entries": (u32, [vp]),
            "bpf_map__set_max_entries": (i, [vp, u32]),
            "bpf_map__pin": (i, [vp, cp]),
            "bpf_map_update_elem": (i, [i, vp, vp, ctypes.c_uint64]),
            "bpf_map_lookup_elem": (i, [i, vp, vp]),
            "bpf_map_delete_elem": (i, [i, vp]),
            "bpf_map_get_next_key": (i, [i, vp, vp]),
            "bpf_map_lookup_and_delete_elem": (i, [i, vp, vp]),
            "bpf_prog_test_run_opts": (i, [i, ctypes.POINTER(_TestRunOpts)]),
            "libbpf_num_possible_cpus": (i, []),
            "ring_buffer__new": (vp, [i, _SAMPLE_FN, vp, vp]),
            "ring_buffer__poll": (i, [vp, i]),
            "ring_buffer__free": (None, [vp]),
            "btf__parse_elf": (vp, [cp, vp]),
            "btf__free": (None, [vp]),
            "btf__find_by_name_kind": (ctypes.c_int32, [vp, cp, u32]),
            "btf__type_by_id": (ctypes.POINTER(_BTFType), [vp, u32]),
            "btf__name_by_offset": (cp, [vp, u32]),
            "btf__load_from_kernel_by_id": (vp, [u32]),
            "bpf_obj_get_info_by_fd": (i, [i, vp, ctypes.POINTER(u32)]),
        }
        for name, (restype, argtypes) in protos.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes


_INSTANCE: list[_Libbpf] = []
_INSTANCE_LOCK = threading.Lock()


def _libbpf() -> _Libbpf:
    """The one _Libbpf of the process. Made under a lock: two threads making one each (eBPF
    nodes start on several threads) left libbpf calling the print callback of the instance
    that was dropped, freed memory, and the process crashed."""
    if not _INSTANCE:
        with _INSTANCE_LOCK:
            if not _INSTANCE:
                _INSTANCE.append(_Libbpf())
    return _INSTANCE[0]


def available() -> str | None:
    """None when libbpf.so.1 can be loaded, else why not."""
    try:
        _libbpf()
    except ICPNError as e:
        return str(e)
    return None


def _errno_text(err: int) -> str:
    err = abs(err)
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


def _permission_hint(err: int) -> str:
    if abs(err) == errno.EPERM and os.geteuid() != 0:
        return ": BPF needs root (CAP_BPF and CAP_NET_ADMIN); run with sudo"
    if abs(err) == errno.EPERM:
        return ": the kernel refused BPF (locked down, or unprivileged BPF disabled?)"
    return ""


def trim_verifier_log(lines: list[str], keep: int = VERIFIER_TAIL_LINES) -> str:
    """The part of libbpf's output that says why: the last lines of the verifier log."""
    text = "".join(lines)
    m = re.search(r"-- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --", text, re.S)
    body = m.group(1) if m else text
    meaningful = [
        ln.rstrip()
        for ln in body.splitlines()
        if ln.strip() and not ln.startswith("libbpf: prog") and "BTF" not in ln[:4]
    ]
    # The tail ends with "processed N insns ..." after the error; keep the error above it.
    return "\n".join(meaningful[-keep:])


def bpffs_mounted(path: Path = BPFFS) -> bool:
    """True when `path` is a mounted bpf filesystem (pinning needs one)."""
    with open("/proc/self/mounts", encoding="ascii", errors="replace") as f:
        return any(
            ln.split()[1] == str(path) and ln.split()[2] == "bpf" for ln in f if ln.count(" ") >= 2
        )


def mount_bpffs(path: Path = BPFFS) -> None:
    """Mount a bpf filesystem on `path` (DESIGN.md: /sys/fs/bpf exists but is not mounted)."""
    if bpffs_mounted(path):
        return
    libc = _libbpf().libc
    libc.mount.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_void_p]
    if libc.mount(b"bpf", str(path).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise ICPNError(f"cannot mount bpffs on {path}: {_errno_text(err)}{_permission_hint(err)}")


def _require_bpffs(path: Path) -> None:
    for parent in (path, *path.parents):
        if bpffs_mounted(parent):
            return
    raise ICPNError(
        f"cannot pin at {path}: no bpf filesystem is mounted there "
        f"(call pyctl.targets.ebpf.libbpf.mount_bpffs() or `mount -t bpf bpf {BPFFS}`)"
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


@dataclass(frozen=True)
class BTFMember:
    name: str
    offset_bits: int


@dataclass(frozen=True)
class BTFStruct:
    name: str
    size: int
    members: tuple[BTFMember, ...]


def btf_structs(path: str | Path, names: list[str]) -> dict[str, BTFStruct]:
    """Read the layout of the named structs from the BTF of an ELF object (no root needed)."""
    lib = _libbpf().lib
    btf = lib.btf__parse_elf(str(path).encode(), None)
    if not btf:
        raise ICPNError(f"{path}: no readable BTF ({_errno_text(ctypes.get_errno())})")
    try:
        out = {}
        for name in names:
            tid = lib.btf__find_by_name_kind(btf, name.encode(), BTF_KIND_STRUCT)
            if tid < 0:
                raise ICPNError(f"{path}: BTF has no struct {name!r}")
            t = lib.btf__type_by_id(btf, tid).contents
            vlen = t.info & 0xFFFF
            kflag = bool(t.info >> 31)
            arr = ctypes.cast(
                ctypes.addressof(t) + ctypes.sizeof(_BTFType), ctypes.POINTER(_BTFMember * vlen)
            ).contents
            members = tuple(
                BTFMember(
                    lib.btf__name_by_offset(btf, m.name_off).decode(),
                    m.offset & 0xFFFFFF if kflag else m.offset,
                )
                for m in arr
            )
            out[name] = BTFStruct(name, t.size, members)
        return out
    finally:
        lib.btf__free(btf)
