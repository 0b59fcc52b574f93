"""The training loss: per-answer averaging and ordinal (Gaussian) targets for location tokens."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dreamforge.model.data import IGNORE, per_turn_loss  # noqa: E402

VOCAB = 120
LOCATIONS = torch.arange(10, 106).reshape(2, 48)  # two families of 48 location ids, in bin order


def _loss(peak: int, truth: int, sigma: float, family: int = 1, peak_family: int = 1) -> float:
    logits = torch.full((1, 2, VOCAB), -5.0)
    logits[0, 0, LOCATIONS[peak_family, peak]] = 5.0  # position 0 predicts the label at position 1
    labels = torch.tensor([[IGNORE, int(LOCATIONS[family, truth])]])
    turns = torch.tensor([[0, 1]])
    return float(per_turn_loss(logits, labels, turns, LOCATIONS, sigma))


def test_ordinal_targets_prefer_near_misses() -> None:
    # One-hot targets cannot tell a near miss from a far one; Gaussian targets can.
    assert _loss(21, 20, 0.0) == pytest.approx(_loss(40, 20, 0.0))
    assert _loss(20, 20, 1.0) < _loss(21, 20, 1.0) < _loss(23, 20, 1.0) < _loss(40, 20, 1.0)
    # The neighbours are within the truth's own family: the same bin of another family is a far miss.
    assert _loss(20, 20, 1.0, peak_family=0) == pytest.approx(_loss(40, 20, 1.0), abs=0.05)


def test_answers_weigh_equally_whatever_their_length() -> None:
    logits = torch.zeros(1, 6, VOCAB)
    logits[0, 0, 7] = 10.0  # the one-token answer (label at position 1) is right
    labels = torch.tensor([[IGNORE, 7, IGNORE, 8, 8, 8]])
    turns = torch.tensor([[0, 1, 0, 2, 2, 2]])
    loss = float(per_turn_loss(logits, labels, turns))
    wrong = float(torch.log(torch.tensor(float(VOCAB))))  # uniform logits on the long answer
    assert loss == pytest.approx(wrong / 2, abs=0.01)  # not the token mean, 3 / 4 of wrong
