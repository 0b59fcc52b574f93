"""Skills output parsing and the evaluation metrics, driven by scripted model outputs (no training)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from dreamforge.model.evaluate import caption_mentions, evaluate, iou, match_boxes, point_hits
from dreamforge.model.skills import NUM_BEAMS, Skills
from dreamforge.world import get_sample
from dreamforge.world.tasks import caption_prompt, detect_prompt, point_prompt


class _Processor:
    class image_processor:
        max_image_size = {"longest_edge": 96}


class Scripted(Skills):
    """Skills whose generation is a function of (sample index, prompt) instead of a network."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.processor = _Processor()
        self.beams: list[int] = []

    def generate(self, images, prompts, max_new_tokens=64, num_beams=1):
        self.beams.append(num_beams)
        return [self.answer(im, p) for im, p in zip(images, prompts, strict=True)]


def _oracle(n: int):
    truth = {}
    for i in range(n):
        s = get_sample("test", i)
        for t in s.eval_tasks():
            truth[(s.image.tobytes(), t.prompt)] = t.answer
    return lambda im, p: truth[(im.tobytes(), p)]


def test_oracle_scores_full_marks_and_garbage_scores_zero() -> None:
    perfect = evaluate(Scripted(_oracle(12)), split="test", n=12)
    assert perfect["query_em"] == 1.0 and perfect["caption_content"] == 1.0 and perfect["caption_counts"] == 1.0
    assert perfect["caption_background"] == 1.0 and perfect["counts"]["caption_background"] == 8  # normal + long
    assert perfect["detect_miou"] > 0.88 and perfect["detect_f1"] == 1.0  # location-token quantisation only
    assert perfect["point_hit_rate"] == 1.0 and perfect["point_precision"] == 1.0
    assert all(t["reached"] for t in perfect["targets"].values())
    junk = evaluate(Scripted(lambda im, p: "<unk> 0.5 , , 1.7 banana"), split="test", n=12)
    assert junk["query_em"] == 0.0 and junk["caption_content"] == 0.0 and junk["caption_background"] == 0.0
    oracle, swap = _oracle(12), {"white": "grey", "grey": "white", "cream": "mint", "mint": "cream",
                                 "lavender": "peach", "peach": "lavender"}  # the right objects, the wrong background
    wrong_ground = evaluate(Scripted(lambda im, p: " ".join(swap.get(w, w) for w in oracle(im, p).split(" "))),
                            split="test", n=12)
    assert wrong_ground["caption_content"] == 1.0 and wrong_ground["caption_background"] == 0.0
    assert junk["detect_miou"] == 0.0 and junk["detect_f1"] == 0.0 and junk["point_hit_rate"] == 0.0


@pytest.mark.parametrize(
    "output", ["", "none", "0.1 0.2", "0.9 0.9 0.1 0.1", "red circle", "0.1 0.2 0.3 0.4 0.5 0.6", "…"]
)
def test_malformed_detect_and_point_output_is_empty(output: str) -> None:
    skills = Scripted(lambda im, p: output)
    image = get_sample("test", 0).image
    assert skills.detect(image, "red circle") == []
    assert skills.point(image, "Red Circle.") == [] or output == "0.1 0.2"


def test_skills_build_the_training_prompts() -> None:
    seen: list[str] = []
    skills = Scripted(lambda im, p: seen.append(p) or "0.10 0.20 0.30 0.40, 0.50 0.60 0.70 0.80")
    image = get_sample("test", 0).image
    assert skills.detect(image, "  Red   Circle ") == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.6, 0.7, 0.8)]
    assert skills.point(image, "star") == []  # four numbers per group are not points
    skills.caption(image, "long")
    skills.query(image, " how many stars are there? ")
    assert seen == [
        detect_prompt("red circle"),
        point_prompt("star"),
        caption_prompt("long"),
        "how many stars are there?",
    ]
    # lists of objects are beam-searched, a one-word query answer is greedy
    assert skills.beams == [NUM_BEAMS["detect"], NUM_BEAMS["point"], NUM_BEAMS["caption"], 1]
    assert min(NUM_BEAMS["detect"], NUM_BEAMS["point"], NUM_BEAMS["caption"]) > 1 and NUM_BEAMS["query"] == 1


def test_metric_helpers() -> None:
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0 and iou((0, 0, 0.5, 0.5), (0.5, 0.5, 1, 1)) == 0.0
    assert match_boxes([(0, 0, 0.5, 0.5)], [(0, 0, 0.5, 0.5), (0.6, 0.6, 0.9, 0.9)]) == [1.0, 0.0]
    assert point_hits([(0.2, 0.2), (0.21, 0.21)], [(0.1, 0.1, 0.3, 0.3), (0.5, 0.5, 0.6, 0.6)]) == 1
    assert caption_mentions("two red circles and a small blue square.") == {("red", "circle"): 2, ("blue", "square"): 1}
    assert caption_mentions("there are two shapes on a noisy mint background. a large green star at the top.") == {
        ("green", "star"): 1
    }


def test_presence_first_decides_none_on_the_total_location_probability() -> None:
    import torch

    from dreamforge.model.skills import PresenceFirst

    none, locations = 0, [1, 2, 3, 4]
    prompt = torch.zeros(2, 5, dtype=torch.long)
    # Row 0: `none` 0.3, four neighbouring bins 0.175 each (together 0.7): a location wins, the best bin is taken.
    # Row 1: `none` 0.6, the bins 0.1 each: `none` stays.
    probs = torch.tensor([[0.3, 0.175, 0.175, 0.175, 0.175, 0.0], [0.6, 0.1, 0.1, 0.1, 0.1, 0.0]]) + 1e-9
    first = PresenceFirst(none, locations)
    out = first(prompt, probs.log())
    assert out[0].argmax() in locations and out[1].argmax() == none
    # Only the first generated position is touched.
    later = first(torch.zeros(2, 6, dtype=torch.long), probs.log())
    assert torch.equal(later, probs.log())
