"""``python -m pyctl.wireshark``: rewrite icpn.lua's constants block from pyctl/constants.py."""

from pyctl.wireshark import DISSECTOR, render

print(f"{DISSECTOR}: constants block " + ("updated" if render() else "already up to date"))
