"""Files: converted networks (``.spikecast``), ANN weights + sidecar, NIR graphs."""
