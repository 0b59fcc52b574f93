"""Data-informed initialisation: coordinate embeddings start ordered by value."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dreamforge.model.arch import TINY_SPEC, build_config, build_model  # noqa: E402
from dreamforge.model.data import coordinate_ids  # noqa: E402
from dreamforge.model.init import init_coordinate_embeddings  # noqa: E402
from dreamforge.model.tokenizer import build_tokenizer  # noqa: E402


def test_coordinate_embeddings_start_ordered_by_value() -> None:
    tokenizer = build_tokenizer(n_samples=20)
    model = build_model(build_config(TINY_SPEC, tokenizer), seed=0)
    emb = model.get_input_embeddings().weight
    ids = coordinate_ids(tokenizer)
    norm_before = float(emb.norm(dim=1).mean())
    init_coordinate_embeddings(model, tokenizer)
    e = torch.nn.functional.normalize(emb[ids].detach(), dim=1)
    sim = e @ e.T
    # Similarity to 0.50 falls off with the distance in value: near neighbours are alike, far values are not.
    assert sim[50, 51] > sim[50, 55] > sim[50, 70]
    assert float(sim[50, 51]) > 0.8 and float(sim[50, 90].abs()) < 0.3
    # The other embeddings are untouched and the coordinates keep their scale.
    assert float(emb[ids].norm(dim=1).mean()) == pytest.approx(norm_before, rel=0.2)
