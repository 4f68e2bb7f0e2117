"""ICPN: data-plane emulation toolkit for the intelligent computing power network."""
