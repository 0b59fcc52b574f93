"""The model card (README.md) written next to a built checkpoint, from its eval.json."""

from __future__ import annotations

from pathlib import Path


def _pct(v) -> str:
    return f"{100 * v:.1f} %" if isinstance(v, (int, float)) else "-"


def _decoding(beams: dict, length_penalty: float | None) -> str:
    said = ", ".join(f"{skill} {'greedy' if n == 1 else f'{n} beams'}" for skill, n in beams.items())
    ranked = f" (ranked by log-probability / length ** {length_penalty:g})" if length_penalty is not None else ""
    return f"Decoded as served: {said}{ranked}."


def write_card(out: Path, report: dict) -> None:
    test = report.get("test", {})
    spec = report["spec"]
    lines = [
        "# DreamForge default model",
        "",
        "A tiny vision-language model in the Idefics3 (SmolVLM) architecture, trained from scratch on DreamForge's",
        "synthetic world of coloured shapes (`dreamforge.world`). Load it like any SmolVLM checkpoint:",
        "",
        "```python",
        "from transformers import AutoModelForImageTextToText, AutoProcessor",
        "model = AutoModelForImageTextToText.from_pretrained(path)",
        "processor = AutoProcessor.from_pretrained(path)",
        "```",
        "",
        "or through `dreamforge.model.skills.Skills.from_pretrained(path)` for caption / query / detect / point.",
        "",
        "## Model",
        "",
        f"- parameters: {report['parameters']:,}; checkpoint: {report['checkpoint_bytes'] / 1e6:.1f} MB",
        f"- image {spec['image_size']} px, patch {spec['patch_size']}, pixel shuffle x{spec['scale_factor']}: "
        f"{(spec['image_size'] // spec['patch_size']) ** 2 // spec['scale_factor'] ** 2} image tokens",
        f"- vision: {spec['vision_layers']} layers x {spec['vision_hidden']}; "
        f"text (Llama): {spec['text_layers']} layers x {spec['text_hidden']}",
        f"- trained with seed {report['seed']} in {report['train_seconds'] / 60:.1f} min on {report['device']}"
        + (f", {report['cpu_capability']}, {report['precision']}" if "precision" in report else "") + " "
        f"({report['history']['steps_done']} steps, {report['history']['images_seen']:,} images"
        + (", stopped early at the deadline" if report["history"]["stopped_early"] else "")
        + ")",
        "",
    ]
    if test:
        lines += [
            f"## Held-out test split ({test['n_images']} images, never seen in training)",
            "",
            *([_decoding(test["beams"], test.get("length_penalty")), ""] if "beams" in test else []),
            "| metric | value | target |",
            "| --- | --- | --- |",
        ]
        for key, t in test["targets"].items():
            lines.append(f"| {key} | {_pct(test.get(key))} | {_pct(t['target'])} |")
        lines += ["", "| per question type | exact match |", "| --- | --- |"]
        for key in sorted(k for k in test if k.startswith("query_") and k != "query_em"):
            lines.append(f"| {key[len('query_') :]} | {_pct(test[key])} |")
        lines += ["", "| other | value |", "| --- | --- |"]
        for key in (
            "caption_counts",
            "caption_short",
            "caption_normal",
            "caption_long",
            "detect_precision",
            "detect_recall",
            "detect_absent_none",
            "point_precision",
            "point_absent_none",
        ):
            if key in test:
                lines.append(f"| {key} | {_pct(test[key])} |")
        lines.append("")
    (out / "README.md").write_text("\n".join(lines))
