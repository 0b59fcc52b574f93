"""A live tuning session's worker: `python -m services.trainer.tuning_worker DIR RANK [ADAPTER]`.

Holds one finetune's LoRA adapter (on the default model) and its optimizer in memory between
calls, so Moondream-style clients can alternate rollouts and train steps. Requests and replies
are JSON lines on stdin/stdout (`{"id", "op", ...}` -> `{"id", "ok", "result" | "error"}`);
everything else the libraries print goes to stderr. Ops:

- `rollouts`: `n` sampled answers to one skill request (query / detect / point);
- `train_step`: one optimiser step over groups. RL groups use the group-relative (GRPO)
  objective: advantages are rewards normalised within the group, the loss is the advantage-
  weighted mean token log-likelihood of each rollout. TRL's trainers own their sampling loop and
  have no entry point for rollouts sampled and scored elsewhere, which is what this API is, so
  this one step is written here; the KL to the base (adapter disabled) is measured and reported.
  SFT groups add the cross-entropy of the target answer;
- `save`: the adapter to a directory (PEFT `save_pretrained`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dreamforge.images import bytes_from_data_url_or_base64, decode_image
from dreamforge.model.data import chat_prompt
from dreamforge.model.skills import MAX_NEW_TOKENS, Skills, load
from dreamforge.world import detect_prompt, format_boxes, format_points, parse_boxes, parse_points, point_prompt

EOU = "<end_of_utterance>"


def prompt_of(request: dict[str, Any]) -> str:
    skill = request["skill"]
    if skill == "query":
        return str(request["question"]).strip()
    obj = " ".join(str(request["object"]).lower().strip().rstrip(".").split())
    return detect_prompt(obj) if skill == "detect" else point_prompt(obj)


def output_of(skill: str, text: str) -> dict[str, Any]:
    if skill == "detect":
        return {"objects": [{"x_min": a, "y_min": b, "x_max": c, "y_max": d} for a, b, c, d in parse_boxes(text)]}
    if skill == "point":
        return {"points": [{"x": x, "y": y} for x, y in parse_points(text)]}
    return {"answer": text}


def text_of(skill: str, output: dict[str, Any]) -> str:
    """The model's own text for a rollout output or an SFT target."""
    if skill == "detect":
        raw = output.get("objects", output.get("boxes", []))
        return format_boxes([(b["x_min"], b["y_min"], b["x_max"], b["y_max"]) for b in raw])
    if skill == "point":
        return format_points([(p["x"], p["y"]) for p in output.get("points", [])])
    return str(output.get("answer", ""))


class Session:
    def __init__(self, base_dir: str, rank: int, adapter: str | None) -> None:
        from peft import LoraConfig, PeftModel, get_peft_model

        from services.trainer.methods import TARGET_MODULES  # the same layers as a training job's adapter

        model, self.processor = load(base_dir)
        if adapter:
            self.model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        else:
            self.model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                          target_modules=TARGET_MODULES))
        self.skills = Skills(self.model, self.processor)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def image(self, request: dict[str, Any]) -> Image.Image:
        return decode_image(bytes_from_data_url_or_base64(str(request.get("image_url", "")))).image

    @torch.no_grad()
    def rollouts(self, request: dict[str, Any], n: int) -> list[dict[str, Any]]:
        skill = request["skill"]
        settings = request.get("settings") or {}
        self.model.eval()
        batch = self.skills._inputs([self.image(request)], [prompt_of(request)])
        limit = MAX_NEW_TOKENS[skill]
        out = self.model.generate(
            **batch, do_sample=True, temperature=float(settings.get("temperature", 1.0)) or 1.0,
            top_p=float(settings.get("top_p", 1.0)), num_return_sequences=n,
            max_new_tokens=min(int(settings.get("max_tokens", limit)), limit),
            eos_token_id=self.skills.eos_ids, pad_token_id=self.skills.pad_id)
        new = out[:, batch["input_ids"].shape[1]:]
        rows = []
        for ids in new.tolist():
            ended = any(t in self.skills.eos_ids for t in ids)
            ids = [t for t in ids if t not in self.skills.eos_ids and t != self.skills.pad_id]
            text = self.processor.decode(ids, skip_special_tokens=True).strip()
            rows.append({"skill": skill, "finish_reason": "stop" if ended else "length",
                         "output": output_of(skill, text), "answer_tokens": ids})
        return rows

    def _logprobs(self, image: Image.Image, prompt: str, answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per answer: mean token log-probability (with grad) and token count."""
        proc = self.processor
        head = chat_prompt(proc, prompt)
        n_prompt = proc(text=[head], images=[[image]], return_tensors="pt")["input_ids"].shape[1]
        tok = proc.tokenizer
        side, tok.padding_side = tok.padding_side, "right"
        try:
            full = proc(text=[head + a + EOU for a in answers], images=[[image]] * len(answers), return_tensors="pt",
                        padding=True).to(self.skills.device)
        finally:
            tok.padding_side = side
        logits = self.model(**full).logits[:, :-1].float()
        target = full["input_ids"][:, 1:]
        mask = full["attention_mask"][:, 1:].clone()
        mask[:, : n_prompt - 1] = 0
        logp = torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0] * mask
        count = mask.sum(1).clamp(min=1)
        return logp.sum(1) / count, count

    def train_step(self, groups: list[dict[str, Any]], lr: float) -> dict[str, Any]:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        losses, kls, rewards, sft_losses = [], [], [], []
        for group in groups:
            request = group["request"]
            skill, image, prompt = request["skill"], self.image(request), prompt_of(request)
            if group.get("mode", "rl") == "sft":
                mean_logp, _ = self._logprobs(image, prompt, [text_of(skill, group["target"])])
                sft_losses.append(-mean_logp.mean())
                continue
            r = torch.tensor([float(x) for x in group["rewards"]])
            rewards.extend(r.tolist())
            if len(r) < 2 or float(r.std()) == 0.0:
                continue  # no signal within the group
            adv = (r - r.mean()) / (r.std() + 1e-4)
            answers = [text_of(skill, ro.get("output", {})) for ro in group["rollouts"]]
            mean_logp, _ = self._logprobs(image, prompt, answers)
            with torch.no_grad(), self.model.disable_adapter():
                ref_logp, _ = self._logprobs(image, prompt, answers)
            kls.append(float((mean_logp.detach() - ref_logp).mean()))
            losses.append(-(adv.to(mean_logp.device) * mean_logp).mean())
        terms = losses + sft_losses
        grad_norm = 0.0
        if terms:
            torch.stack(terms).sum().div(len(groups)).backward()
            params = [p for p in self.model.parameters() if p.requires_grad]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            self.optimizer.step()
        t = torch.tensor(rewards) if rewards else None
        return {"applied": bool(terms), "kl": sum(kls) / len(kls) if kls else None, "grad_norm": grad_norm,
                "sft_loss": float(torch.stack(sft_losses).mean()) if sft_losses else None, "router_kl": None,
                "reward_mean": float(t.mean()) if t is not None else None,
                "reward_std": float(t.std(unbiased=False)) if t is not None else None}

    def save(self, directory: str) -> None:
        self.model.save_pretrained(directory)
        (Path(directory) / "README.md").unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the protocol channel
    os.dup2(2, 1)  # anything printed goes to stderr
    threads = int(os.environ.get("DREAMFORGE_JOB_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    session = Session(argv[1], int(argv[2]), argv[3] if len(argv) > 3 and argv[3] else None)
    out.write(json.dumps({"id": 0, "ok": True, "result": "ready"}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        call = json.loads(line)
        try:
            op = call["op"]
            if op == "rollouts":
                result: Any = session.rollouts(call["request"], int(call["n"]))
            elif op == "train_step":
                result = session.train_step(call["groups"], float(call["lr"]))
            elif op == "save":
                session.save(call["dir"])
                result = {"saved": call["dir"]}
            else:
                raise ValueError(f"unknown op {op!r}")
            reply = {"id": call.get("id"), "ok": True, "result": result}
        except Exception as exc:
            reply = {"id": call.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
