"""The training loss: per-answer averaging and ordinal (Gaussian) targets for coordinates."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dreamforge.model.data import IGNORE, per_turn_loss  # noqa: E402

VOCAB, COORDS = 120, torch.arange(10, 111)  # 101 coordinate ids, in value order


def _loss(peak: int, truth: int, sigma: float) -> float:
    logits = torch.full((1, 2, VOCAB), -5.0)
    logits[0, 0, COORDS[peak]] = 5.0  # position 0 predicts the label at position 1
    labels = torch.tensor([[IGNORE, int(COORDS[truth])]])
    turns = torch.tensor([[0, 1]])
    return float(per_turn_loss(logits, labels, turns, COORDS, sigma))


def test_ordinal_targets_prefer_near_misses() -> None:
    # One-hot targets cannot tell a near miss from a far one; Gaussian targets can.
    assert _loss(41, 40, 0.0) == pytest.approx(_loss(90, 40, 0.0))
    assert _loss(40, 40, 1.5) < _loss(41, 40, 1.5) < _loss(45, 40, 1.5) < _loss(90, 40, 1.5)


def test_answers_weigh_equally_whatever_their_length() -> None:
    logits = torch.zeros(1, 6, VOCAB)
    logits[0, 0, 7] = 10.0  # the one-token answer (label at position 1) is right
    labels = torch.tensor([[IGNORE, 7, IGNORE, 8, 8, 8]])
    turns = torch.tensor([[0, 1, 0, 2, 2, 2]])
    loss = float(per_turn_loss(logits, labels, turns))
    wrong = float(torch.log(torch.tensor(float(VOCAB))))  # uniform logits on the long answer
    assert loss == pytest.approx(wrong / 2, abs=0.01)  # not the token mean, 3 / 4 of wrong
