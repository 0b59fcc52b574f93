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


def answer_mask(input_ids: torch.Tensor, assistant_id: int, colon_id: int, eos_id: int) -> torch.Tensor:
    """True on the tokens after each `assistant :` marker up to and including the next end of utterance."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    ids = input_ids.tolist()
    for row, seq in enumerate(ids):
        inside = False
        for j, tok in enumerate(seq):
            if inside:
                mask[row, j] = True
                if tok == eos_id:
                    inside = False
            elif tok == colon_id and j > 0 and seq[j - 1] == assistant_id:
                inside = True
    return mask


def training_batch(processor, images: Sequence[Image.Image], conversations: Sequence[Sequence[Task]]) -> dict:
    """Inputs and labels (answers only) for a batch of multi-turn conversations, right-padded."""
    tok = processor.tokenizer
    texts = [conversation_text(processor, tasks) for tasks in conversations]
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        batch = processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    ids = batch["input_ids"]
    mask = answer_mask(
        ids,
        tok.convert_tokens_to_ids("assistant"),
        tok.convert_tokens_to_ids(":"),
        tok.convert_tokens_to_ids(tok.eos_token),
    )
    labels = torch.where(mask & (batch["attention_mask"] > 0), ids, torch.full_like(ids, IGNORE))
    batch["labels"] = labels
    return batch
