"""spikecast: convert trained PyTorch ANNs into spiking networks and measure what it costs."""

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Network

__all__ = ["Network", "capture"]
__version__ = "0.1.0"
