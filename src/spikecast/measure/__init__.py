"""Measurement: the typed result, exact counts, NeuroBench op counts, latency, fidelity."""
