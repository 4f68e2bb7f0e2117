"""The libbpf binding, the map layouts shared with C, and the attach helpers of the eBPF plane."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyctl import constants as C
from pyctl import netns
from pyctl.errors import ICPNError
from pyctl.targets.ebpf import EBPFDataPlane, bpfobject, libbpf
from pyctl.targets.ebpf import attach as att
from pyctl.targets.ebpf import maps as M
from pyctl.targets.ebpf.dataplane import BUILD_DIR, NODE_OBJECT, NODE_PROGRAM
from pyctl.targets.ebpf.host import HOST_OBJECT, HOST_PROGRAM

ROOT = Path(__file__).resolve().parents[1]
ARCH_INC = f"/usr/include/{platform.machine()}-linux-gnu"
HOST_ONLY = {"icpn_host_cfg"}
HOST_STRUCTS = {"icpn_host_cfg", "icpn_apn_mark"}

root = pytest.mark.root


def _require_built(path: Path) -> None:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is not built: run `make build`")


def _possible_cpus() -> int:
    """Count of /sys/devices/system/cpu/possible ("0-3" or "0,2-5")."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def compile_bpf(tmp_path: Path, name: str, source: str) -> Path:
    """Build a small BPF C program the way ebpf/Makefile does."""
    src = tmp_path / f"{name}.bpf.c"
    src.write_text(source)
    obj = tmp_path / f"{name}.bpf.o"
    subprocess.run(
        ["clang", "-O2", "-g", "-target", "bpf", "-Wall", "-idirafter", ARCH_INC]
        + ["-c", str(src), "-o", str(obj)],
        check=True,
        capture_output=True,
    )
    return obj


PROLOGUE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""

# Reads a map value at an index the verifier cannot bound: it must be rejected.
BAD_PROGRAM = (
    PROLOGUE
    + """
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } values SEC(".maps");
SEC("xdp") int out_of_bounds(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&values, &k);
    if (!v)
        return XDP_PASS;
    return v[ctx->ingress_ifindex];
}
"""
)

# Grows the frame by 4 bytes at the front and writes a marker there.
PUSH_PROGRAM = (
    PROLOGUE
    + """
SEC("xdp") int push4(struct xdp_md *ctx)
{
    __u8 marker[4] = { 0xde, 0xad, 0xbe, 0xef };
    if (bpf_xdp_adjust_head(ctx, -4) || bpf_xdp_store_bytes(ctx, 0, marker, 4))
        return XDP_ABORTED;
    return XDP_TX;
}
"""
)


# --- layouts, no root needed ------------------------------------------------------------------


@pytest.mark.parametrize("obj_path", [NODE_OBJECT, HOST_OBJECT], ids=["node", "host"])
def test_ctypes_layouts_match_the_btf_of_the_object(obj_path: Path) -> None:
    _require_built(obj_path)
    structs = [
        s
        for s in M.STRUCTS
        if (s._c_name_ in HOST_STRUCTS if obj_path == HOST_OBJECT else s._c_name_ not in HOST_ONLY)
    ]
    btf = libbpf.btf_structs(obj_path, [s._c_name_ for s in structs])
    for s in structs:
        b = btf[s._c_name_]
        assert b.size == ctypes.sizeof(s), (
            f"{s._c_name_}: C {b.size} bytes, ctypes {ctypes.sizeof(s)}"
        )
        c_members = [(m.name, m.offset_bits // 8) for m in b.members]
        py_members = [(f[0], getattr(s, f[0]).offset) for f in s._fields_]
        assert c_members == py_members, f"{s._c_name_} differs between layout.h and maps.py"


def test_address_fields_read_as_words_are_8_byte_aligned() -> None:
    """maps.h addr_words() tells clang these 16-byte fields of map values (8-byte aligned) are
    8-byte aligned too; a layout change that moved one would make that untrue."""
    assert M.Cfg.sid_prefix.offset % 8 == 0 and M.Cfg.sid_mask.offset % 8 == 0
    assert M.SIDSlot.addr.offset % 8 == 0


def test_btf_of_a_missing_struct_is_named(tmp_path: Path) -> None:
    _require_built(NODE_OBJECT)
    with pytest.raises(ICPNError, match="no struct 'icpn_nonexistent'"):
        libbpf.btf_structs(NODE_OBJECT, ["icpn_nonexistent"])


def test_generated_headers_are_current() -> None:
    assert (BUILD_DIR / "icpn_ebpf.h").read_text() == M.c_header()
    assert (BUILD_DIR / "icpn_consts.h").read_text() == C.c_header()


def test_every_source_file_has_an_spdx_line() -> None:
    files = sorted((ROOT / "ebpf").glob("**/*.[ch]")) + [ROOT / "ebpf" / "Makefile"]
    files = [f for f in files if "build" not in f.parts]
    assert len(files) > 10
    for f in files:
        assert "SPDX-License-Identifier" in f.read_text().splitlines()[0], f


def test_trim_verifier_log_keeps_the_end_of_the_program_log() -> None:
    lines = [
        "libbpf: prog 'p': BPF program load failed: Permission denied\n",
        "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n",
        "".join(f"{i}: (b7) r0 = {i}\n" for i in range(40)),
        "R1 invalid mem access 'scalar'\nprocessed 41 insns\n-- END PROG LOAD LOG --\n",
    ]
    out = libbpf.trim_verifier_log(lines, keep=5).splitlines()
    assert out == ["37: (b7) r0 = 37", "38: (b7) r0 = 38", "39: (b7) r0 = 39"] + [
        "R1 invalid mem access 'scalar'",
        "processed 41 insns",
    ]


def test_pinning_without_bpffs_says_how_to_mount(tmp_path: Path) -> None:
    assert not libbpf.bpffs_mounted(tmp_path)
    with pytest.raises(ICPNError, match="mount_bpffs"):
        libbpf._require_bpffs(tmp_path / "pinned")


def test_open_of_a_missing_object_says_make_build(tmp_path: Path) -> None:
    with pytest.raises(ICPNError, match="make build"):
        bpfobject.BPFObject(tmp_path / "absent.bpf.o")


# --- loading (root) ---------------------------------------------------------------------------


@pytest.fixture
def node_obj() -> Iterator[bpfobject.BPFObject]:
    _require_built(NODE_OBJECT)
    with bpfobject.BPFObject(NODE_OBJECT) as obj:
        obj.load()
        yield obj


@root
def test_node_object_programs_and_map_sizes(node_obj: bpfobject.BPFObject) -> None:
    assert node_obj.program_names() == [NODE_PROGRAM]
    prog = node_obj.program(NODE_PROGRAM)
    assert prog.prog_type == libbpf.BPF_PROG_TYPE_XDP and prog.fd > 0
    expected = {
        "cfg": M.Cfg,
        "ports": M.Port,
        "my_sids": M.SID,
        "policies": M.Policy,
        "sid_lists": M.SIDList,
        "classifiers": M.Classifier,
        "test_ctx": M.TestCtx,
        "verdict": M.Verdict,
        "aux_out": M.Frame,
        "cms": M.CMSCell,
        "pfc_state": M.PFCState,
    }
    for name, struct in expected.items():
        assert node_obj.map(name).value_size == ctypes.sizeof(struct), name
    assert node_obj.map("fib6").key_size == ctypes.sizeof(M.Fib6Key)
    with pytest.raises(ICPNError, match="no program 'nope'.*icpn_node"):
        node_obj.program("nope")


@root
def test_jit_image_names_the_source_line_of_its_code(node_obj: bpfobject.BPFObject) -> None:
    """What bench/bpf_profile.py maps perf samples with: every function's code, in order, and
    line info pointing into it, from the node program's own source."""
    img = node_obj.program(NODE_PROGRAM).jit_image()
    assert img.funcs and sum(n for _, n, _ in img.funcs) == len(img.code)
    assert [off for _, _, off in img.funcs] == sorted(off for _, _, off in img.funcs)
    inside = [ln for ln in img.lines if any(a <= ln.address < a + n for a, n, _ in img.funcs)]
    assert len(inside) == len(img.lines) > 100
    src = (NODE_OBJECT.parents[1] / "src" / "icpn_node.bpf.c").read_text().splitlines()
    mine = [ln for ln in img.lines if ln.file == "icpn_node.bpf.c" and ln.source]
    assert mine and all(ln.source == src[ln.line - 1].strip() for ln in mine)


@root
def test_map_round_trip(node_obj: bpfobject.BPFObject) -> None:
    if_port = node_obj.map("if_port")
    assert if_port.lookup(M.u32_key(7)) is None
    if_port.update(M.u32_key(7), M.u32_key(3))
    if_port.update(M.u32_key(9), M.u32_key(4))
    assert if_port.lookup(M.u32_key(7)) == M.u32_key(3)
    assert sorted(if_port.keys()) == sorted([M.u32_key(7), M.u32_key(9)])
    assert if_port.delete(M.u32_key(7)) is True
    assert if_port.delete(M.u32_key(7)) is False
    if_port.clear()
    assert list(if_port.keys()) == []

    cfg = node_obj.map("cfg")
    c = M.Cfg(node_id=0xABCDEF, line_rate_bps=10**9)
    cfg.update(M.u32_key(0), c)
    back = M.Cfg.from_buffer_copy(cfg.lookup(M.u32_key(0)) or b"")
    assert (back.node_id, back.line_rate_bps) == (0xABCDEF, 10**9)

    fib6 = node_obj.map("fib6")
    key = M.Fib6Key(prefixlen=32 + 48, table=0)
    key.addr[:6] = [0x20, 0x01, 0x0D, 0xB8, 0, 1]
    fib6.update(key, M.Nexthop(port=2))
    host = M.Fib6Key(prefixlen=32 + 128, table=0)
    host.addr[:] = list(bytes.fromhex("20010db8000100000000000000000042"))
    found = fib6.lookup(host)
    assert found is not None and M.Nexthop.from_buffer_copy(found).port == 2

    assert node_obj.map("aux_out").pop() is None
    with pytest.raises(ICPNError, match="map 'if_port': value is 2 bytes, the map wants 4"):
        if_port.update(M.u32_key(1), b"\x00\x00")


@root
def test_percpu_map_has_one_value_per_cpu(node_obj: bpfobject.BPFObject) -> None:
    stats = node_obj.map("stats")
    assert stats.percpu
    raw = stats.lookup(M.u32_key(M.STAT_RX))
    assert raw is not None and len(raw) == 8 * _possible_cpus()


@root
def test_verifier_rejection_names_the_program_and_keeps_the_reason(tmp_path: Path) -> None:
    obj_path = compile_bpf(tmp_path, "bad", BAD_PROGRAM)
    with bpfobject.BPFObject(obj_path) as obj, pytest.raises(ICPNError) as err:
        obj.load()
    msg = str(err.value)
    lines = msg.splitlines()
    assert "verifier rejected program 'out_of_bounds'" in lines[0]
    assert "EACCES" in lines[0]
    assert any("unbounded memory access" in ln or "invalid access" in ln for ln in lines)
    assert lines[-1].startswith("processed ")
    assert len(lines) <= libbpf.VERIFIER_TAIL_LINES + 1


@root
def test_test_run_returns_retval_and_grown_frame_once(tmp_path: Path) -> None:
    obj_path = compile_bpf(tmp_path, "push", PUSH_PROGRAM)
    frame = bytes(range(60))
    with bpfobject.BPFObject(obj_path) as obj:
        obj.load()
        prog = obj.program("push4")
        for _ in range(2):  # every run starts from the input: grown by exactly 4 bytes
            run = prog.test_run(frame)
            assert run.retval == 3  # XDP_TX
            assert run.data == b"\xde\xad\xbe\xef" + frame


@root
def test_a_user_without_privileges_is_told_to_use_root() -> None:
    """A forked child of this interpreter drops to nobody (groups, gid and uid: no capability
    left) and asks: nothing is exec'd or imported from the clone as nobody, so where the clone
    lives (CI's may sit under a 0700 folder) does not matter. It loads a world-readable copy of
    the object, in a directory of its own under /tmp."""
    _require_built(NODE_OBJECT)
    assert libbpf.available() is None  # libbpf.so.1 is loaded before the fork
    nobody = 65534
    world = Path(tempfile.mkdtemp(prefix="icpn-nobody-", dir="/tmp"))
    try:
        world.chmod(0o755)
        obj = world / NODE_OBJECT.name
        shutil.copyfile(NODE_OBJECT, obj)
        obj.chmod(0o644)
        out = _as_nobody(nobody, lambda: _unprivileged_answers(obj))
    finally:
        shutil.rmtree(world)
    assert out[0] == "needs root to load BPF programs (run with sudo)", out
    assert out[1].startswith("ICPNError") and "run with sudo" in out[1], out


def _unprivileged_answers(obj: Path) -> list[str]:
    lines = [str(EBPFDataPlane.unavailable())]
    o = bpfobject.BPFObject(obj)
    try:
        o.load()
        lines.append("loaded")
    except ICPNError as e:
        lines.append(f"ICPNError {e}")
    finally:
        o.close()
    return lines


def _as_nobody(uid: int, ask: Callable[[], list[str]]) -> list[str]:
    """`ask()` in a forked child running as `uid` (and gid `uid`, no groups); its lines."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(rfd)
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            lines = ask()
        except Exception as e:  # reported to the parent, which fails with it
            lines = [f"child failed: {type(e).__name__}: {e}"]
        try:
            os.write(wfd, "\n".join(lines).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        text = r.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text.splitlines()


# --- attaching (root, in a namespace of our own) ----------------------------------------------


@pytest.fixture
def veth_ns() -> Iterator[netns.Netns]:
    ns = netns.create(netns.unique_name("icpnt-ebpf"))
    try:
        netns.add_veth(ns, "ve0", ns, "ve1")
        ns.ip("link", "set", "ve0", "up")
        ns.ip("link", "set", "ve1", "up")
        yield ns
    finally:
        ns.delete()


@root
def test_attach_and_detach_xdp_and_tc(veth_ns: netns.Netns) -> None:
    _require_built(HOST_OBJECT)
    with bpfobject.BPFObject(NODE_OBJECT) as node, bpfobject.BPFObject(HOST_OBJECT) as host:
        node.load()
        host.load()
        xdp_fd, tc_fd = node.program(NODE_PROGRAM).fd, host.program(HOST_PROGRAM).fd

        def attach() -> int:
            idx = att.ifindex_of("ve0")
            att.attach_xdp(idx, xdp_fd, "generic")
            att.attach_tc(idx, tc_fd, "egress", name=HOST_PROGRAM)
            return idx

        idx = veth_ns.run(attach)
        link = veth_ns.ip("-d", "link", "show", "ve0")
        assert "xdpgeneric" in link and "prog/xdp" in link
        tc = subprocess.run(
            ["ip", "netns", "exec", veth_ns.name, "tc", "filter", "show", "dev", "ve0", "egress"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert HOST_PROGRAM in tc and "direct-action" in tc

        def detach() -> None:
            att.detach_xdp(idx, "generic")
            att.detach_tc(idx)

        veth_ns.run(detach)
        assert "xdpgeneric" not in veth_ns.ip("-d", "link", "show", "ve0")
        qdiscs = subprocess.run(
            ["ip", "netns", "exec", veth_ns.name, "tc", "qdisc", "show", "dev", "ve0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "clsact" not in qdiscs
        with pytest.raises(ICPNError, match="no interface named 'absent0'"):
            veth_ns.run(lambda: att.ifindex_of("absent0"))


def test_crc_tables_and_count_min_row_constants() -> None:
    """The generated CRC tables and row constants the C code hashes with (hash.h, classify.h)."""
    import random
    import zlib

    t = M.crc32_tables()
    assert len(t) == 4 and all(len(row) == 256 for row in t)
    rng = random.Random(7)
    for _ in range(200):
        data = rng.randbytes(C.FLOW_KEY_LEN)
        crc = 0xFFFFFFFF
        i = 0
        while i + 4 <= len(data):  # hash.h's slicing-by-4 step, then bytes
            crc ^= int.from_bytes(data[i : i + 4], "little")
            lo, b1, b2, hi = crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF, crc >> 24
            crc = t[3][lo] ^ t[2][b1] ^ t[1][b2] ^ t[0][hi]
            i += 4
        for b in data[i:]:
            crc = t[0][(crc ^ b) & 0xFF] ^ (crc >> 8)
        assert crc ^ 0xFFFFFFFF == zlib.crc32(data)
        for row, x in enumerate(M.cms_row_xor()):
            assert zlib.crc32(bytes([row]) + data) == zlib.crc32(data) ^ x
