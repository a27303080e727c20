"""One report across schemes: run the ANN and every scheme on the same samples
(:mod:`~spikecast.report.compare`), draw the figures and write a self-contained HTML file."""
