"""The one error type for user errors.

A :class:`SpikecastError` says what the user gave that is wrong (a file, an option, a
parameter, a dataset) and what is allowed; the command line prints its message as one
``error: ...`` line and exits with status 2. It is a ``ValueError``, so code that catches
``ValueError`` keeps working.
"""

from __future__ import annotations


class SpikecastError(ValueError):
    """Bad input from the user: the message names what is wrong and what is allowed."""
