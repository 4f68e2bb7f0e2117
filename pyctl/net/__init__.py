"""Emulated networks: topologies as data, and Mininet nodes that run them."""
