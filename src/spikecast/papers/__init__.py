"""The two papers' reproductions, sweeps and figures; they import the schemes, never the reverse."""
