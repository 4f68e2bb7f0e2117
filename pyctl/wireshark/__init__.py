"""The ICPN Wireshark dissector (``icpn.lua``, shipped in this package) and ``icpn wireshark``.

The Lua file repeats the wire constants it needs in one block rendered from `pyctl.constants`
(`constants_block`); ``python -m pyctl.wireshark`` rewrites that block after a constant changes,
and tests/test_wireshark_dissector.py fails while the file and the constants disagree.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

from pyctl import constants as C
from pyctl.errors import ICPNError

DISSECTOR = Path(__file__).resolve().parent / "icpn.lua"

# The personal Lua plugin folder of Wireshark 4.0 on Linux (`tshark -G folders`, "Personal Lua
# Plugins"); binary plugins go one level down, in the version folder, Lua scripts do not.
DEFAULT_PLUGIN_DIR = Path("~/.local/lib/wireshark/plugins")

LUA_CONSTANTS = (
    "ALTMARK_OPT_TYPE",
    "APN_ID_TYPE_128",
    "APN_ID_TYPE_32",
    "APN_ID_TYPE_64",
    "APN_OPT_TYPE_DEFAULT",
    "APN_SRH_TLV_TYPE_DEFAULT",
    "CSID_BITS",
    "IFIT_REPORT_PORT",
    "IFIT_REPORT_VERSION",
    "IOAM_TRACE_TYPE_DEFAULT",
    "IPPROTO_DSTOPTS",
    "IPPROTO_FRAGMENT",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ROUTING",
    "IPV6_OPT_PAD1",
    "SRH_ROUTING_TYPE",
    "SRH_TLV_PAD1",
)
_BEGIN = "-- BEGIN constants: rendered from pyctl/constants.py (`python -m pyctl.wireshark`)"
_BLOCK = re.compile(r"^-- BEGIN constants:.*?^-- END constants\n", re.S | re.M)


def constants_block() -> str:
    """The Lua table of wire constants, as it must appear in icpn.lua."""
    lines = [f"{_BEGIN}, do not edit.", "local C = {"]
    for name in LUA_CONSTANTS:
        value = getattr(C, name)
        decimal = name.endswith(("_PORT", "_BITS", "_VERSION"))
        lines.append(f"    {name} = {value if decimal else hex(value)},")
    lines += ["}", "-- END constants", ""]
    return "\n".join(lines)


def lua_constants_block(text: str) -> str:
    """The constants block found in the Lua source `text` ('' when there is none)."""
    m = _BLOCK.search(text)
    return m.group(0) if m else ""


def render(path: Path = DISSECTOR) -> bool:
    """Rewrite the constants block of `path` from pyctl.constants; True when it changed."""
    text = path.read_text()
    old = lua_constants_block(text)
    if not old:
        raise ICPNError(f"{path}: no '-- BEGIN constants' ... '-- END constants' block")
    new = text.replace(old, constants_block())
    if new != text:
        path.write_text(new)
    return new != text


def plugin_dir() -> Path:
    """Where Wireshark looks for the user's Lua plugins: asked of tshark when it is installed."""
    tshark = shutil.which("tshark")
    if tshark:
        try:
            out = subprocess.run(
                [tshark, "-G", "folders"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Personal Lua Plugins" and value.strip():
                return Path(value.strip())
    return DEFAULT_PLUGIN_DIR.expanduser()


def install(dest: Path | None = None) -> Path:
    """Copy icpn.lua into `dest` (default: the personal Lua plugin folder); the file written."""
    folder = plugin_dir() if dest is None else dest
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / DISSECTOR.name
        shutil.copyfile(DISSECTOR, target)
    except OSError as e:
        raise ICPNError(f"--install: cannot write {folder}: {e.strerror or e}") from None
    return target


DESCRIPTION = (
    "ICPN's Wireshark dissector (Lua, Wireshark >= 4.0): the APN option (Hop-by-Hop, "
    "Destination option, SRH TLV) with APP/USER groups and parameters, the Alternate Marking "
    "option, the NEXT-CSID structure of uSID destination addresses (set the locator block in "
    "the ICPN preferences) and IFIT reports on UDP 5391. Load it for one run with "
    "`tshark -X lua_script:$(icpn wireshark --path) -r run.pcap -O icpn,icpn.ifit`, or install "
    "it for every Wireshark start with --install. See docs/observability.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--path", action="store_true", help="print the path of icpn.lua")
    what.add_argument(
        "--install",
        action="store_true",
        help="copy icpn.lua into Wireshark's personal Lua plugin folder "
        "(~/.local/lib/wireshark/plugins) and say where",
    )
    p.add_argument("--dir", type=Path, help="with --install: copy into this folder instead")


def run(args: argparse.Namespace) -> int:
    if args.dir is not None and not args.install:
        raise ICPNError("--dir: goes with --install")
    if args.path:
        print(DISSECTOR)
        return 0
    target = install(args.dir)
    print(f"installed {target}; Wireshark and tshark load it at their next start")
    return 0
