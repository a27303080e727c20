"""spikecast: convert trained PyTorch/ONNX ANNs into spiking networks and measure the cost.

    import spikecast
    snn = spikecast.convert(model, "rate", calib_x=x_train[:2000], steps=32)
    result = snn.evaluate(x_test, y_test)
    snn.save("model.spikecast");  snn = spikecast.load("model.spikecast")

Attributes are imported on first use, so ``import spikecast`` stays light.
"""

from __future__ import annotations

from spikecast.lazy import lazy_attributes

__version__ = "0.1.0"

_EXPORTS = {
    "convert": "spikecast.api",
    "load": "spikecast.api",
    "as_network": "spikecast.api",
    "finetune": "spikecast.finetune",
    "capture": "spikecast.frontends.torch_fx",
    "Network": "spikecast.ir.graph",
    "SchemeResult": "spikecast.measure.result",
    "register": "spikecast.schemes.registry",
    "scheme_names": "spikecast.schemes.registry",
    "get_recipe": "spikecast.schemes.registry",
    "register_preset": "spikecast.energy.presets",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
