"""Sigma-delta conversion (paper 004): hysteresis-quantized neurons with signed spikes,
intensity-to-delay input, an exact event-driven kernel and a batched time-slice mode.

The scheme itself is :class:`spikecast.schemes.sigma_delta.SigmaDeltaRecipe`
(registered as ``"sigma-delta"``); this package holds its parts:
``neuron`` (parameters, firing rules, pure step), ``encoding``, ``program`` (network ->
flat arrays), ``kernel`` + ``event_sim`` (exact simulator), ``timeslice``, ``qann``,
``thresholds``, ``finetune``, ``figures``, ``reproduce`` and ``cli``.
"""
