"""The readout rules shared by every scheme: hand-made counts and potentials."""

import pytest
import torch

from spikecast.measure.readout import NO_CLASS, Readout, decide, silent_and_tied

COUNTS = torch.tensor([[3, 5, 5], [2, 2, 2], [0, 0, 0], [1, 0, 0], [-1, 0, -2]])
POTENTIAL = torch.tensor([[0.9, 0.1, 0.2], [0.3, 0.3, 0.1], [0.0, 0.4, 0.2], [0.0, 0.8, 0.0],
                          [0.5, -0.1, 0.7]])


def test_count_then_membrane_breaks_ties_by_potential_then_index() -> None:
    assert decide(COUNTS, POTENTIAL, Readout.COUNT_MEMBRANE).tolist() == [2, 0, 1, 0, 1]


def test_spike_count_scores_every_tie_wrong() -> None:
    assert decide(COUNTS, POTENTIAL, Readout.SPIKE_COUNT).tolist() == [
        NO_CLASS, NO_CLASS, NO_CLASS, 0, 1]


def test_membrane_reads_the_largest_potential() -> None:
    assert decide(COUNTS, POTENTIAL, Readout.MEMBRANE).tolist() == [0, 0, 1, 1, 2]


def test_silent_and_tied_flags() -> None:
    silent, tied = silent_and_tied(COUNTS)
    assert silent.tolist() == [False, False, True, False, False]
    assert tied.tolist() == [True, True, True, False, False]


def test_time_axis_is_kept() -> None:
    counts = torch.stack([COUNTS, COUNTS.flip(0)], 1)  # (5, 2 time points, 3)
    potential = torch.stack([POTENTIAL, POTENTIAL.flip(0)], 1)
    got = decide(counts, potential, Readout.COUNT_MEMBRANE)
    assert got.shape == (5, 2) and got[:, 0].tolist() == [2, 0, 1, 0, 1]


def test_unknown_readout_lists_the_allowed() -> None:
    with pytest.raises(ValueError, match="allowed: 'spike-count', 'count-membrane', 'membrane'"):
        Readout("vote")
