"""From a skill call to the model's prompt, and from the generated text to the skill's answer.

Shared by every runtime so that torch and Triton send the same prompts (the world's, which
the default model was trained on: `dreamforge.world.tasks`) and parse detect/point answers
the same way (normalised coordinates; anything malformed is dropped, never raised on).
"""

from __future__ import annotations

from dreamforge.limits import MAX_TOKENS
from dreamforge.model.skills import MAX_NEW_TOKENS
from dreamforge.world import caption_prompt, detect_prompt, parse_boxes, parse_points, point_prompt, readable
from services.inference.runtime.base import SkillCall, SkillOutput

#: Token limit of a chat reply when the request names none (a request may ask for up to `MAX_TOKENS`).
CHAT_MAX_NEW_TOKENS = 64


def normalise_object(name: str) -> str:
    """`Red Circle.` -> `red circle` (the world's object names are lower case, no full stop)."""
    return " ".join(name.lower().strip().rstrip(".").split())


def prompt_for(call: SkillCall) -> str:
    if call.skill == "caption":
        return caption_prompt(call.text)
    if call.skill == "detect":
        return detect_prompt(normalise_object(call.text))
    if call.skill == "point":
        return point_prompt(normalise_object(call.text))
    return call.text.strip()  # query, chat


def max_new_tokens(call: SkillCall) -> int:
    if call.max_new_tokens:
        return max(1, min(call.max_new_tokens, MAX_TOKENS))
    return CHAT_MAX_NEW_TOKENS if call.skill == "chat" else MAX_NEW_TOKENS[call.skill]


def to_output(call: SkillCall, text: str, input_tokens: int, output_tokens: int) -> SkillOutput:
    """The skill's answer from the generated text (boxes / points parsed for detect / point, whose text is
    shown in the decimal form people read rather than the model's location tokens)."""
    boxes = parse_boxes(text) if call.skill == "detect" else []
    points = parse_points(text) if call.skill == "point" else []
    return SkillOutput(text=readable(call.skill, text), boxes=list(boxes), points=list(points),
                       input_tokens=input_tokens, output_tokens=output_tokens)
