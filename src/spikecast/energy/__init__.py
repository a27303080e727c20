"""Energy: one protocol, digital and analog presets in one registry."""
