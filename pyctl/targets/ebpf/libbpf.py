"""A small ctypes binding to libbpf.so.1: the library, its structures and constants, bpffs, and
BTF struct layouts. The objects built on it (load an object, BPF_PROG_TEST_RUN, typed map
access, ring buffers) are in pyctl.targets.ebpf.bpfobject.

Only what the eBPF data plane needs. Errors are `ICPNError`s that say what to do (run as root,
mount bpffs, the verifier's own last lines) instead of a bare errno.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import threading
from dataclasses import dataclass
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
