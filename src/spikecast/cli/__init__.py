"""The ``spikecast`` command line (:mod:`spikecast.cli.main`)."""

from spikecast.cli.main import app

__all__ = ["app"]
