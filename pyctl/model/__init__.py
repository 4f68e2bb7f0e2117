"""The target-neutral model of what each node should do, and its YAML loader."""

from pyctl.model.load import load_node, node_from_dict
from pyctl.model.node import NodeConfig, PacketContext

__all__ = ["NodeConfig", "PacketContext", "load_node", "node_from_dict"]
