"""The scheme settings a fine-tuned model file records, read back as conversion defaults.

A sidecar written by :meth:`spikecast.finetune.api.FinetunedModel.save` holds
``"scheme": {"name": ..., "params": {...}}``: the scheme and recipe parameters the model was
tuned for (e.g. rate ``steps``, ``v_init``, ``normalization``; sigma-delta ``theta``).
"""

from __future__ import annotations

from typing import Any


def recorded_scheme(
    info: dict[str, Any], scheme: str | None, params: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """The scheme and parameters to convert a model with: ``scheme`` (None: the recorded
    one), and for the recorded scheme its recorded parameters updated with ``params``."""
    tuned = info.get("scheme")
    if not isinstance(tuned, dict) or not isinstance(tuned.get("name"), str):
        return scheme, params
    if scheme is not None and scheme != tuned["name"]:
        return scheme, params
    recorded = tuned.get("params")
    if not isinstance(recorded, dict):
        raise ValueError(f"the model's sidecar records scheme {tuned['name']!r} without a "
                         "'params' object")
    return tuned["name"], recorded | params
