"""Data-informed initialisation: coordinate embeddings start ordered by value."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dreamforge.model.arch import DEFAULT_SPEC, build_config, build_model  # noqa: E402
from dreamforge.model.data import location_ids  # noqa: E402
from dreamforge.model.init import init_location_embeddings  # noqa: E402
from dreamforge.model.tokenizer import build_tokenizer  # noqa: E402


def test_location_embeddings_start_ordered_and_families_apart() -> None:
    tokenizer = build_tokenizer(n_samples=20)
    model = build_model(build_config(DEFAULT_SPEC, tokenizer), seed=0)
    emb = model.get_input_embeddings().weight
    ids = location_ids(tokenizer)
    assert ids.shape == (4, 48) and len(set(ids.flatten().tolist())) == 4 * 48
    norm_before = float(emb.detach().norm(dim=1).mean())
    init_location_embeddings(model, tokenizer)
    e = torch.nn.functional.normalize(emb[ids[0]].detach(), dim=1)
    sim = e @ e.T
    # Similarity to bin 24 falls off with the distance in bins: near neighbours are alike, far bins are not.
    assert sim[24, 25] > sim[24, 28] > sim[24, 40]
    assert float(sim[24, 25]) > 0.8 and float(sim[24, 45].abs()) < 0.4
    # Families live in separate dimensions: x and y codes do not overlap, so one vector can carry both.
    other = torch.nn.functional.normalize(emb[ids[1]].detach(), dim=1)
    assert float((e @ other.T).abs().max()) < 1e-6
    # The other embeddings keep their scale.
    assert float(emb[ids].norm(dim=-1).mean()) == pytest.approx(norm_before, rel=0.2)
