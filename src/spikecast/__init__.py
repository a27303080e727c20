"""spikecast: convert trained PyTorch/ONNX ANNs into spiking networks and measure the cost.

    import spikecast
    snn = spikecast.convert(model, "rate", calib_x=x_train[:2000], steps=32)
    result = snn.evaluate(x_test, y_test)
    snn.save("model.spikecast");  snn = spikecast.load("model.spikecast")

Attributes are imported on first use, so ``import spikecast`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "convert": "spikecast.api",
    "load": "spikecast.api",
    "as_network": "spikecast.api",
    "capture": "spikecast.frontends.torch_fx",
    "Network": "spikecast.ir.graph",
    "SchemeResult": "spikecast.measure.result",
    "register": "spikecast.schemes.registry",
    "scheme_names": "spikecast.schemes.registry",
    "get_recipe": "spikecast.schemes.registry",
    "register_preset": "spikecast.energy.presets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'spikecast' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
