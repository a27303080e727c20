"""Progress output: one bar on a terminal, plain lines elsewhere; training logs every N
epochs."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from spikecast.progress import Reporter
from spikecast.zoo.train import log_interval, train_model


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=100), buf


def test_plain_lines_at_each_tenth_without_escape_codes():
    console, buf = _console(False)
    with Reporter("eval", 50, console=console, interval=1e9) as p:
        for _ in range(50):
            p.advance(1, status="acc 0.9")
        p.log("done")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1] == "done"
    assert lines[0].startswith("eval: 5/50 (10 %) acc 0.9, ")
    assert lines[9].startswith("eval: 50/50 (100 %)")
    assert "\x1b" not in buf.getvalue()


def test_plain_lines_by_time_only_when_tenths_are_off():
    console, buf = _console(False)
    with Reporter("train", 7, console=console, interval=0.0, tenths=False) as p:
        for _ in range(7):
            p.advance()
    assert len(buf.getvalue().splitlines()) == 7  # interval 0: every advance
    console, buf = _console(False)
    with Reporter("train", 7, console=console, interval=1e9, tenths=False) as p:
        for _ in range(7):
            p.advance()
    assert buf.getvalue() == ""


def test_terminal_gets_a_bar_and_disabled_prints_nothing():
    console, buf = _console(True)
    with Reporter("eval", 4, console=console) as p:
        p.advance(4)
    assert "\x1b" in buf.getvalue() and "4/4" in buf.getvalue()
    console, buf = _console(False)
    with Reporter("eval", 4, console=console, enabled=False) as p:
        p.advance(4)
        p.log("hidden")
    assert buf.getvalue() == ""


@pytest.mark.parametrize(("epochs", "every", "want"), [(300, None, 30), (15, None, 1),
                                                       (15, 5, 5)])
def test_log_interval(epochs, every, want):
    assert log_interval(epochs, every) == want


def test_log_interval_refuses_zero():
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        log_interval(10, 0)


def test_training_logs_every_n_epochs_plus_the_last(capsys):
    train_model("wine-fc", "wine", epochs=7, log_every=3, lr=0.01, batch_size=64)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert [ln.split(":")[0] for ln in lines] == ["epoch 3/7", "epoch 6/7", "epoch 7/7"]


def test_piped_console_is_wide_and_keeps_messages_on_one_line(monkeypatch):
    from spikecast.cli import output

    monkeypatch.delenv("COLUMNS", raising=False)
    assert output.piped_width() == output.PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "200")
    assert output.piped_width() == 200
    monkeypatch.setenv("COLUMNS", "wide")
    assert output.piped_width() == output.PIPED_WIDTH
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal
    console = output.make_console()
    assert console.width == output.PIPED_WIDTH
    with console.capture() as cap:
        console.print("word " * 60)
    assert len(cap.get().strip().splitlines()) == 1
