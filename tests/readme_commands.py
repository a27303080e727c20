"""The commands and Python snippets of README.md, and the small limits a test runs them with.

A command is a line of a ```bash block (continued by a trailing backslash); its ``#``
comment is dropped, comment-only lines too. :func:`shrink` rewrites a ``spikecast`` command
to run in seconds without changing what it exercises: fewer epochs, samples, Monte-Carlo
draws and calibration samples (each option only where the command has it).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")

LIMIT = "20"
SMALL = {  # option -> value, for commands that accept the option
    "--epochs": "1",
    "--limit": LIMIT,
    "--calib-samples": "100",
    "--fidelity-samples": "8",
    "--mc-seeds": "1",
}
TRAIN_LIMIT = "512"


def blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced code blocks of ``language``."""
    out, body, current = [], [], None
    for line in text.splitlines():
        match = FENCE.match(line.strip())
        if match and current is None:
            current, body = match.group(1), []
        elif match:
            if current == language:
                out.append("\n".join(body))
            current = None
        elif current is not None:
            body.append(line)
    return out


def _strip_comment(line: str) -> str:
    """``cmd --a 1  # note`` -> ``cmd --a 1`` (a # inside quotes is kept)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return shlex.join(list(lexer))


def commands(text: str | None = None) -> list[list[str]]:
    """Every command of the README's bash blocks, as argument lists."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out: list[list[str]] = []
    for block in blocks(text, "bash"):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if not line or (line.startswith("#") and not pending):
                continue
            continued = line.endswith("\\")
            pending += " " + (line[:-1] if continued else line)
            if not continued:
                cmd = _strip_comment(pending.strip())
                if cmd:
                    out.append(shlex.split(cmd))
                pending = ""
    return out


def python_snippets(text: str | None = None) -> list[str]:
    text = README.read_text(encoding="utf-8") if text is None else text
    return blocks(text, "python")


def shrink(args: list[str], options: set[str]) -> list[str]:
    """``args`` (without the program name) with the :data:`SMALL` values for the options
    the command has (``options``): replaced where given, added where not; ``train`` also
    gets ``--limit`` training samples."""
    out = list(args)
    small = dict(SMALL)
    if out and out[0] == "train":
        small["--limit"] = TRAIN_LIMIT
    for opt, value in small.items():
        if opt not in options:
            continue
        if opt in out:
            i = out.index(opt)
            if opt == "--limit" and int(out[i + 1]) < int(value):
                continue
            out[i + 1] = value
        else:
            out += [opt, value]
    return out
