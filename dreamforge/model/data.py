"""Turning world samples into model inputs: chat prompts, multi-turn training conversations and labels.

Prompts always go through the processor (`processor(text=..., images=...)`) so the `<image>` placeholder
expands into the image tokens. A training conversation holds one image and several user/assistant turns;
the loss covers only the assistant answers (and the `<end_of_utterance>` that closes each), found by
scanning the token ids for the `Assistant:` role marker.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from dreamforge.world import Task
from dreamforge.world.tasks import LOCATION_BINS, LOCATION_FAMILIES

IGNORE = -100


def user_message(prompt: str, with_image: bool = True) -> dict:
    content: list[dict] = [{"type": "image"}] if with_image else []
    return {"role": "user", "content": [*content, {"type": "text", "text": prompt}]}


def chat_prompt(processor, prompt: str) -> str:
    """The generation prompt for one image and one user turn, via the processor's chat template."""
    return processor.apply_chat_template([user_message(prompt)], add_generation_prompt=True)


def conversation_text(processor, tasks: Sequence[Task]) -> str:
    """One image, then every task as a user turn answered by the assistant (SmolVLM chat format)."""
    messages: list[dict] = []
    for i, t in enumerate(tasks):
        messages.append(user_message(t.prompt, with_image=i == 0))
        messages.append({"role": "assistant", "content": [{"type": "text", "text": t.answer}]})
    return processor.apply_chat_template(messages)


def answer_turns(input_ids: torch.Tensor, assistant_id: int, colon_id: int, eos_id: int) -> torch.Tensor:
    """For each token, the 1-based index of the assistant answer it belongs to (the tokens after an
    `assistant :` marker up to and including the next end of utterance), 0 elsewhere."""
    turns = torch.zeros_like(input_ids)
    for row, seq in enumerate(input_ids.tolist()):
        inside, k = False, 0
        for j, tok in enumerate(seq):
            if inside:
                turns[row, j] = k
                if tok == eos_id:
                    inside = False
            elif tok == colon_id and j > 0 and seq[j - 1] == assistant_id:
                inside, k = True, k + 1
    return turns


def training_batch(processor, images: Sequence[Image.Image], conversations: Sequence[Sequence[Task]]):
    """Inputs, `labels` (answers only) and `turns` (answer index per token) for a batch of multi-turn
    conversations, right-padded."""
    tok = processor.tokenizer
    texts = [conversation_text(processor, tasks) for tasks in conversations]
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        batch = processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    ids = batch["input_ids"]
    marker = tok.convert_tokens_to_ids("assistant"), tok.convert_tokens_to_ids(":")
    turns = answer_turns(ids, *marker, tok.convert_tokens_to_ids(tok.eos_token)) * (batch["attention_mask"] > 0)
    batch["labels"] = torch.where(turns > 0, ids, torch.full_like(ids, IGNORE))
    batch["turns"] = turns
    return batch


def per_turn_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    turns: torch.Tensor,
    locations: torch.Tensor | None = None,
    sigma: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy averaged within each answer, then over answers: a one-word answer weighs as much as a
    long caption (plain token averaging lets the long answers drown the short ones).

    With `locations` (`location_ids`: one row of token ids per location family, in bin order) and `sigma` > 0,
    a location token's target is a Gaussian over its neighbours in its family (`sigma` in bins) instead of one
    token: being off by one bin then costs less than being off by twenty, which a one-hot target cannot tell
    apart (ordinal targets, as in DFL)."""
    logits, labels, turns = logits[:, :-1].float(), labels[:, 1:], turns[:, 1:]
    logp = logits.log_softmax(-1)
    safe = labels.clamp_min(0)
    ce = -logp.gather(-1, safe[..., None])[..., 0]
    if locations is not None and sigma > 0:
        n_fam, n_bins = locations.shape
        lookup = torch.full((logits.shape[-1],), -1, dtype=torch.long, device=labels.device)
        lookup[locations.reshape(-1)] = torch.arange(n_fam * n_bins, device=labels.device)
        k = lookup[safe]
        is_loc = (k >= 0) & (labels != IGNORE)
        if is_loc.any():
            fam, b = k[is_loc] // n_bins, k[is_loc] % n_bins
            grid = torch.arange(n_bins, device=labels.device, dtype=torch.float32)
            q = (-((grid[None] - b[:, None].float()) ** 2) / (2 * sigma**2)).softmax(-1)
            ce = ce.clone()
            ce[is_loc] = -(q * logp[is_loc][torch.arange(len(fam))[:, None], locations[fam]]).sum(-1)
    ce = ce * (labels != IGNORE)
    n_turns = int(turns.max().item()) + 1
    key = (torch.arange(turns.shape[0], device=turns.device)[:, None] * n_turns + turns).reshape(-1)
    sums = torch.zeros(turns.shape[0] * n_turns, device=ce.device).index_add_(0, key, ce.reshape(-1))
    counts = torch.zeros_like(sums).index_add_(0, key, (labels != IGNORE).reshape(-1).float())
    valid = counts > 0
    return (sums[valid] / counts[valid]).mean()


def location_ids(tokenizer) -> torch.Tensor:
    """Token ids of the location tokens, one row per family (x, y, w, h), in bin order."""
    return torch.tensor(
        [[tokenizer.convert_tokens_to_ids(f"<{f}_{k}>") for k in range(LOCATION_BINS)] for f in LOCATION_FAMILIES]
    )
