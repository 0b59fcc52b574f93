"""Training and held-out rows for each method, as TRL datasets expect them.

A row is a plain dict (JSON-serialisable, written by the service to the job's
`data.jsonl`): `skill`, `prompt`, `reference` (the ground truth the reward function
may use), an image (`world: [split, index]` for the synthetic world, or `image_ref`
for an image the platform stored), and per method `chosen`/`rejected` (dpo) or
`target` (sft). `to_trl` turns rows into TRL's conversational format with the image
in the user turn, so the processor expands the image tokens.

Synthetic sources exist so a job can run without collected feedback (and so the
held-out sets are fixed): prompts come from the world's tasks. Training rows come from
images no model build has drawn (`FEEDBACK_START`), as a user's new images would, and for
dpo/sft they stand for raters: `simulated` rows become feedback only once the policy has
answered them (`rater_feedback`) — a correction where its answer was wrong, a preference for
the true answer over its own wrong one; an acceptance, or a preference over another wrong
answer, where it was right. Held-out preferences (test split) prefer the true
answer to a plausible wrong one; held-out corrections are the true answers.

Which raters the simulated feedback stands for is the job's `raters` (see `RATERS`): `accurate`
raters judge query answers by the truth; `concise` raters judge captions by a house style — the
short form that names every object and nothing else ("a red circle and two blue stars."),
whatever length the prompt asked for. The held-out sets then measure the same raters' judgement
on the test split.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from dreamforge.world import COLOURS, Sample, Task, get_sample, model_form

SKILLS = ("caption", "query", "detect", "point")
#: Simulated raters (dpo/sft synthetic feedback) and the skill each judges: `accurate` wants the true
#: answer to a question; `concise` wants a normal or long caption in the short form.
RATERS = {"accurate": "query", "concise": "caption"}
IMAGE_SIZE = 96
#: First train-split index of the synthetic feedback images: model builds stream their images from
#: `(seed % 20) * 50M` upward (tens of thousands per build), so none has seen these.
FEEDBACK_START = 990_000_000
#: First train-split index of the rehearsal images (`replay_rows`), past the feedback images.
REPLAY_START = 995_000_000


def reference_of(sample: Sample, task: Task) -> dict[str, Any]:
    """Ground truth in the reward library's shape: the scene's objects, and the answer for a query
    (so a query can be rewarded both for being right and for naming the scene's colours)."""
    ref: dict[str, Any] = {"objects": [{"colour": o.colour, "shape": o.shape, "box": list(o.box)}
                                       for o in sample.objects]}
    if task.skill == "query":
        ref["answer"] = task.answer
    return ref


def world_tasks(split: str, start: int, n_images: int, skills: Iterable[str]) -> list[tuple[Sample, Task]]:
    wanted = set(skills)
    out: list[tuple[Sample, Task]] = []
    for i in range(start, start + n_images):
        sample = get_sample(split, i, IMAGE_SIZE)
        out.extend((sample, t) for t in sample.eval_tasks() if t.skill in wanted)
    return out


def wrong_answer(truth: str, rng: random.Random) -> str:
    """A plausible but wrong answer to a query (another colour, count or yes/no)."""
    answer = truth.strip().lower()
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    if answer in COLOURS:
        return rng.choice([c for c in COLOURS if c != answer])
    if answer.isdigit():
        return str(int(answer) + rng.choice([1, 2]))
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven"]
    if answer in words:
        return rng.choice([w for w in words if w != answer])
    return rng.choice(sorted(COLOURS))


def rater_view(sample: Sample, task: Task, raters: str) -> tuple[str, str] | None:
    """What `raters` want for this task and the usual answer they would rank below it, or None
    when they do not judge it (see RATERS). accurate: the truth (the usual answer is left to
    `wrong_answer`); concise: a caption's short form over the form the prompt asked for."""
    if task.skill != RATERS[raters]:
        return None
    if raters == "concise":
        return (sample.caption("short"), task.answer) if task.kind != "short" else None
    return task.answer, ""


def synthetic_rows(method: str, split: str, start: int, n_images: int, skills: Iterable[str],
                   seed: int = 0, simulated: bool = False, raters: str = "accurate") -> list[dict[str, Any]]:
    """Rows for `method` from the synthetic world (train split for training, test for held-out).
    `simulated`: dpo/sft rows that stand for `raters`' feedback on the policy's answers (see
    `rater_feedback`), instead of fixed pairs and corrections."""
    rng = random.Random(seed)
    rows = []
    for sample, task in world_tasks(split, start, n_images, skills):
        row: dict[str, Any] = {"skill": task.skill, "prompt": task.prompt, "world": [split, sample.index],
                               "reference": reference_of(sample, task)}
        if method in ("dpo", "sft"):
            view = rater_view(sample, task, raters)
            if view is None and (method == "dpo" or raters != "accurate"):
                continue
            wanted, usual = view or (task.answer, "")
            if simulated:
                row.update(simulated=True, truth=wanted, **({"usual": usual} if usual else {}))
            elif method == "dpo":
                row.update(chosen=wanted, rejected=usual or wrong_answer(wanted, rng))
            else:
                row["target"] = wanted
        rows.append(row)
    return rows


def feedback_rows(method: str, n_images: int, skills: Iterable[str], seed: int,
                  raters: str = "accurate") -> list[dict[str, Any]]:
    """A job's synthetic training rows: `n_images` unseen train images per seed (see FEEDBACK_START)."""
    return synthetic_rows(method, "train", FEEDBACK_START + seed * n_images, n_images, skills, seed=seed,
                          simulated=True, raters=raters)


def replay_rows(n_images: int, skills: Iterable[str], seed: int) -> list[dict[str, Any]]:
    """Prompts of `skills` on `n_images` unseen train images, to be answered by the policy before
    training and trained on as they are (rehearsal, sft's `replay_images`): a LoRA adapter changes
    every prompt's answers, and feedback on one skill alone moved the others (concise captions:
    detect F1 -27 points), so the adapter also learns to leave these answers as they were
    (measured at 64 images: query answers kept, detect not yet)."""
    rows = synthetic_rows("sft", "train", REPLAY_START + seed * n_images, n_images, skills, seed=seed)
    return [{k: v for k, v in r.items() if k != "target"} | {"replay": True} for r in rows]


def rater_feedback(method: str, rows: list[dict[str, Any]], answers: list[str]) -> list[dict[str, Any]]:
    """What a rater would give for each simulated row the policy answered with `answers` (compared
    as the model evaluation does: case, spaces, final stop). sft: a correction where the answer was
    wrong and an acceptance (the answer itself) where it was right; dpo: the true answer preferred
    over the policy's own where that was wrong, and over a plausible wrong answer (another model's,
    say, or the row's `usual` answer) where it was right. Feedback on the wrong answers alone pulls a
    policy off the answers it already gets right (measured: sft held-out match -6 points, dpo win-rate -2.3)."""
    from dreamforge.model.evaluate import normalise

    rng = random.Random(len(rows))
    out = []
    for row, answer in zip(rows, answers, strict=True):
        truth = row["truth"]
        right = normalise(answer) == normalise(truth)
        fed = {k: v for k, v in row.items() if k not in ("simulated", "truth", "usual")}
        if method == "sft":
            out.append({**fed, "target": truth, "corrected": not right})
        elif method == "dpo":
            rejected = answer.strip() if not right and answer.strip() else (row.get("usual")
                                                                            or wrong_answer(truth, rng))
            out.append({**fed, "chosen": truth, "rejected": rejected, "corrected": not right})
    return out


def rows_from_reward(payload: dict[str, Any], images_root: str = "") -> dict[str, Any] | None:
    """A training row from a buffered `reward.scored` event (its JSON form), or None when unusable.
    `images_root` is the platform's image store (`$DREAMFORGE_HOME/images`)."""
    skill = payload.get("skill", "")
    prompt = payload.get("prompt", "")
    if skill not in SKILLS or not prompt:
        return None
    row: dict[str, Any] = {"skill": skill, "prompt": prompt, "image_ref": payload.get("imageRef", ""),
                           "tenant": payload.get("meta", {}).get("tenantId", ""), "images_root": images_root,
                           "reference": None, "reward": payload.get("reward", 0.0)}
    chosen, rejected = _answer_text(payload.get("outputJson", "")), _answer_text(payload.get("rejectedOutputJson", ""))
    if rejected:
        # Detect / point texts are shown in decimals; the model is trained on its own location tokens.
        row.update(chosen=model_form(skill, chosen), rejected=model_form(skill, rejected))
    if payload.get("correction"):
        row["target"] = model_form(skill, payload["correction"])
        if skill == "query":
            row["reference"] = {"answer": payload["correction"]}
    return row


def _answer_text(output_json: str) -> str:
    """The text an output carried (`answer`, `caption`, or the raw JSON for boxes/points)."""
    if not output_json:
        return ""
    try:
        value = json.loads(output_json)
    except json.JSONDecodeError:
        return output_json
    if isinstance(value, dict):
        for key in ("answer", "caption", "text"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return output_json


def load_image(row: dict[str, Any]) -> Image.Image | None:
    """The row's image: re-rendered from the world, or the served image from the platform's image
    store (`dreamforge.image_store`, written by inference)."""
    if row.get("world"):
        split, index = row["world"]
        return get_sample(split, int(index), IMAGE_SIZE).image
    ref, tenant = row.get("image_ref"), row.get("tenant")
    if not ref or not tenant:
        return None
    try:
        from dreamforge.image_store import load_ref

        root = row.get("images_root")
        return load_ref(ref, tenant, Path(root) if root else None)
    except (KeyError, ValueError, OSError):
        return None  # purged, deleted, never stored, or not an image reference


def user_turn(prompt: str) -> list[dict[str, Any]]:
    """One user turn with an image placeholder (the image travels in the row's image column)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def assistant_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def to_trl(method: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's conversational rows (prompt [+ chosen/rejected | completion]) with their images."""
    out = []
    for row in rows:
        image = load_image(row)
        if image is None:
            continue
        item: dict[str, Any] = {"prompt": user_turn(row["prompt"]), "skill": row["skill"],
                                "reference": json.dumps(row.get("reference")), "latency_ms": 0.0}
        if method == "grpo":
            item["image"] = image
        elif method == "dpo":
            if not row.get("chosen") or not row.get("rejected"):
                continue
            item.update(images=[image], chosen=assistant_turn(row["chosen"]), rejected=assistant_turn(row["rejected"]))
        elif method == "sft":
            if not row.get("target"):
                continue
            item.update(images=[image], completion=assistant_turn(row["target"]))
        out.append(item)
    return out
