"""Conversion-aware fine-tuning of an ANN for a scheme's neurons.

``spikecast.finetune(model, scheme, data, epochs=...)`` (:func:`spikecast.finetune.api.finetune`);
the package itself is callable as that function, so ``spikecast.finetune`` works whether it
resolves to the function or to this package.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from spikecast.lazy import lazy_attributes

_EXPORTS = {
    "finetune": "spikecast.finetune.api",
    "FinetunedModel": "spikecast.finetune.api",
    "NetworkModule": "spikecast.finetune.to_module",
    "to_module": "spikecast.finetune.to_module",
    "QCFS": "spikecast.finetune.quantizers",
    "QuantReLU": "spikecast.finetune.quantizers",
    "Quantizer": "spikecast.finetune.quantizers",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from spikecast.finetune.api import finetune

        return finetune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
