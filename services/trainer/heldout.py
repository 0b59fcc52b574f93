"""Held-out evaluation of a policy, run by the job's worker before and after training.

The same numbers decide the release gate, so they are computed the same way both times,
on sets the training never sees (the synthetic test split):

- skill metrics (`dreamforge.model.evaluate` on `eval_images` test images): query exact
  match, caption content, detect F1/mIoU, point hit rate — what must not drop;
- `heldout_reward` (mean, std) of greedy answers under the job's reward function, plus the
  mean answer length in words (a policy winning by padding shows here) and, for queries, their
  exact match (`heldout_query_em`, on `heldout_images` images: more questions than above; a job
  that trains other skills is still measured on the held-out queries, see `heldout_sets`);
- `preference_win_rate` (dpo): share of held-out pairs where the policy gives the preferred
  answer a higher log-likelihood than the rejected one;
- `correction_match` (sft): share of held-out prompts answered exactly as corrected.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from dreamforge.model.evaluate import evaluate, normalise
from dreamforge.model.skills import MAX_NEW_TOKENS, NUM_BEAMS, Skills
from dreamforge.rewards import RewardFunctionSpec, ScoringItem, parse_reward_function
from services.trainer.data import load_image, synthetic_rows

SKILL_METRICS = ("query_em", "caption_content", "detect_f1", "detect_miou", "point_hit_rate")
#: What must not drop (the release gate): the skill metrics plus the held-out query exact match.
GUARDED_METRICS = (*SKILL_METRICS, "heldout_query_em")


def heldout_sets(method: str, skills: list[str], n_images: int, seed: int,
                 raters: str = "accurate") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The held-out rows of the job's skills (its reward is scored on these; dpo/sft: judged by the
    job's `raters`) and, when the job does not train queries, the held-out queries its
    `heldout_query_em` guard is measured on instead."""
    heldout = synthetic_rows(method, "test", 0, n_images, skills, seed=seed, raters=raters)
    guard = [] if "query" in skills else synthetic_rows("grpo", "test", 0, n_images, ["query"], seed=seed)
    return heldout, guard


def query_em(skills: Skills, rows: list[dict[str, Any]]) -> float:
    """Greedy exact match on held-out query rows (the larger query set the gate guards)."""
    outputs = answers(skills, rows)
    return sum(normalise(o) == normalise(r["reference"]["answer"]) for r, o in zip(rows, outputs, strict=True)) \
        / max(len(rows), 1)


def _image(row: dict[str, Any]) -> Image.Image:
    image = load_image(row)
    if image is None:
        raise ValueError(f"held-out row without an image: {row.get('prompt')!r}")
    return image


def skill_metrics(skills: Skills, n_images: int) -> dict[str, float]:
    result = evaluate(skills, split="test", n=n_images, batch_size=32)
    return {k: float(result.get(k, 0.0)) for k in SKILL_METRICS}


def answers(skills: Skills, rows: list[dict[str, Any]]) -> list[str]:
    by_index: dict[int, str] = {}
    for skill in sorted({r["skill"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["skill"] == skill]
        for b in range(0, len(idx), 32):
            chunk = idx[b:b + 32]
            texts = skills.generate([_image(rows[i]) for i in chunk], [rows[i]["prompt"] for i in chunk],
                                    MAX_NEW_TOKENS[skill], NUM_BEAMS[skill])  # decoded as served
            by_index.update(zip(chunk, texts, strict=True))
    return [by_index[i] for i in range(len(rows))]


def reward_metrics(skills: Skills, spec: RewardFunctionSpec, rows: list[dict[str, Any]]) -> dict[str, float]:
    outputs = answers(skills, rows)
    rewards = [spec.score(ScoringItem(skill=r["skill"], prompt=r["prompt"], output=o, reference=r.get("reference"),
                                      latency_ms=None, rating=None, preferred=None)).reward
               for r, o in zip(rows, outputs, strict=True)]
    t = torch.tensor(rewards, dtype=torch.float64)
    out = {"heldout_reward": float(t.mean()), "heldout_reward_std": float(t.std(unbiased=False)),
           "heldout_words": sum(len(o.split()) for o in outputs) / max(len(outputs), 1)}
    captions = [(r, o) for r, o in zip(rows, outputs, strict=True) if r["skill"] == "caption"]
    if captions:  # what the captions say, whatever the reward: (colour, shape) Jaccard, and their length
        content = parse_reward_function({"terms": [{"metric": "caption_content_accuracy", "weight": 1.0}]})
        out["heldout_caption_content"] = sum(
            content.score(ScoringItem(skill="caption", prompt=r["prompt"], output=o, reference=r.get("reference"),
                                      latency_ms=None, rating=None, preferred=None)).reward
            for r, o in captions) / len(captions)
        out["heldout_caption_words"] = sum(len(o.split()) for _, o in captions) / len(captions)
    queries = [(r, o) for r, o in zip(rows, outputs, strict=True) if r["skill"] == "query"]
    if queries:  # the same answers, checked for correctness: a larger query set than the skill metrics'
        out["heldout_query_em"] = sum(normalise(o) == normalise(r["reference"]["answer"])
                                      for r, o in queries) / len(queries)
    return out


@torch.no_grad()
def _answer_logprob(skills: Skills, row: dict[str, Any], answer: str) -> float:
    """Sum of the log-probabilities of `answer`'s tokens after the prompt (and its end of turn)."""
    from dreamforge.model.data import chat_prompt

    proc = skills.processor
    prompt = chat_prompt(proc, row["prompt"])
    image = _image(row)
    full = proc(text=[prompt + answer + "<end_of_utterance>"], images=[[image]], return_tensors="pt")
    n_prompt = proc(text=[prompt], images=[[image]], return_tensors="pt")["input_ids"].shape[1]
    full = full.to(skills.device)
    logits = skills.model(**full).logits[0, :-1].float()
    target = full["input_ids"][0, 1:]
    logp = torch.log_softmax(logits, -1).gather(-1, target[:, None])[:, 0]
    return float(logp[n_prompt - 1:].sum())


def preference_win_rate(skills: Skills, rows: list[dict[str, Any]]) -> float:
    wins = [_answer_logprob(skills, r, r["chosen"]) > _answer_logprob(skills, r, r["rejected"]) for r in rows]
    return sum(wins) / max(len(wins), 1)


def correction_match(skills: Skills, rows: list[dict[str, Any]]) -> float:
    outputs = answers(skills, rows)
    hits = [normalise(o) == normalise(r["target"]) for r, o in zip(rows, outputs, strict=True)]
    return sum(hits) / max(len(hits), 1)


def evaluate_policy(skills: Skills, method: str, spec: RewardFunctionSpec | None, heldout: list[dict[str, Any]],
                    n_images: int, guard: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Every held-out metric this job's gate may use (see the module docstring); `guard`: held-out
    query rows for `heldout_query_em` when `heldout` has none (a caption job)."""
    was_training = skills.model.training
    skills.model.eval()
    try:
        metrics = skill_metrics(skills, n_images)
        if spec is not None and heldout:
            metrics.update(reward_metrics(skills, spec, heldout))
        if method == "dpo":
            pairs = [r for r in heldout if r.get("chosen") and r.get("rejected")]
            metrics["preference_win_rate"] = preference_win_rate(skills, pairs)
        if method == "sft":
            metrics["correction_match"] = correction_match(skills, [r for r in heldout if r.get("target")])
        if guard and "heldout_query_em" not in metrics:
            metrics["heldout_query_em"] = query_em(skills, guard)
    finally:
        skills.model.train(was_training)
    return {k: round(v, 5) for k, v in metrics.items()}
