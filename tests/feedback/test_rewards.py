"""The reward library: validation names the field, each metric on real world ground truth, TRL callables."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import pytest

from dreamforge.model import evaluate
from dreamforge.rewards import METRICS, RewardDefinitionError, ScoringItem, as_trl_reward, parse_reward_function
from dreamforge.world import format_boxes, format_points, get_sample


def _one(metric: str, weight: float = 1.0, direction: str = "maximize", **params: Any) -> Any:
    term: dict[str, Any] = {"metric": metric, "weight": weight, "direction": direction}
    if params:
        term["params"] = params
    return parse_reward_function({"terms": [term]})


@pytest.mark.parametrize(("definition", "field"), [
    ({"terms": [{"metric": "bogus", "weight": 1}]}, "terms[0].metric"),
    ({"terms": [{"metric": "bleu", "weight": 1}, {"metric": "bleu", "weight": "heavy"}]}, "terms[1].weight"),
    ({"terms": [{"metric": "bleu", "weight": math.inf}]}, "terms[0].weight"),
    ({"terms": [{"metric": "bleu", "weight": 0}]}, "terms[0].weight"),
    ({"terms": [{"metric": "bleu", "weight": 1, "direction": "up"}]}, "terms[0].direction"),
    ({"terms": [{"metric": "keyword_mention", "weight": 1}]}, "terms[0].params.keywords"),
    ({"terms": [{"metric": "keyword_mention", "weight": 1, "params": {"keywords": []}}]}, "terms[0].params.keywords"),
    ({"terms": [{"metric": "latency_ms", "weight": 1, "params": {"max_ms": -5}}]}, "terms[0].params.max_ms"),
    ({"terms": [{"metric": "bleu", "weight": 1, "params": {"n": 4}}]}, "terms[0].params.n"),
    ({"terms": [{"metric": "colour_mention", "weight": 1, "params": {"colours": ["teal"]}}]},
     "terms[0].params.colours[0]"),
    ({"terms": [{"metric": "bleu", "weight": 1}, {"metric": "bleu", "weight": 2}]}, "terms[1].name"),
    ({"terms": []}, "terms"),
    ({"terms": [{"metric": "bleu", "weight": 1}], "extra": 1}, "extra"),
    ("{not json", "definition"),
])
def test_invalid_definitions_name_the_field(definition: Any, field: str) -> None:
    with pytest.raises(RewardDefinitionError) as err:
        parse_reward_function(definition)
    assert err.value.field == field
    assert isinstance(err.value, ValueError) and err.value.message


def test_weighted_sum_and_directions() -> None:
    spec = parse_reward_function(json.dumps({"terms": [
        {"metric": "exact_match", "weight": 2.0},
        {"metric": "latency_ms", "weight": 1.0, "direction": "minimize", "params": {"max_ms": 400}},
        {"metric": "output_length", "weight": -0.5, "params": {"max_words": 4}},
        {"metric": "human_rating", "weight": 1.0},
    ]}))
    item = ScoringItem("query", "what colour is the circle?", "Red.", {"answer": "red"}, latency_ms=100.0)
    score = spec.score(item)
    # human_rating has no rating here, so it is left out of the breakdown
    assert score.terms == pytest.approx({"exact_match": 2.0, "latency_ms": 0.75, "output_length": -0.125})
    assert score.reward == pytest.approx(2.625)
    assert spec.to_json()["terms"][1]["params"] == {"max_ms": 400.0}


def test_every_metric_states_range_and_normalisation() -> None:
    assert len(METRICS) >= 15
    for metric in METRICS.values():
        assert metric.raw_range and metric.normalisation and metric.description


def test_text_metrics() -> None:
    ref = {"answer": "a red circle and a blue square"}
    good = ScoringItem("caption", "describe the image.", "a red circle and a blue square.", ref)
    half = ScoringItem("caption", "describe the image.", "a red circle", ref)
    for name in ("token_f1", "bleu", "chrf"):
        spec = _one(name)
        assert spec.score(good).reward == pytest.approx(1.0)
        assert 0.0 < spec.score(half).reward < 1.0
    assert _one("token_f1").score(half).reward == pytest.approx(2 * (3 / 7) / (1 + 3 / 7))
    assert _one("keyword_mention", keywords=["red", "blue square", "star"]).score(good).reward == pytest.approx(2 / 3)
    assert _one("exact_match").score(
        ScoringItem("query", "q", '{"text": "yes"}', {"correction": "no"})).reward == 0.0


def test_caption_metrics_agree_with_model_evaluation() -> None:
    sample = get_sample("test", 3, 64)
    objects = [{"colour": o.colour, "shape": o.shape, "box": list(o.box)} for o in sample.objects]
    exact = _one("caption_content_accuracy", partial=False)
    partial = _one("caption_content_accuracy")
    truth = sample.caption("normal")
    right = ScoringItem("caption", "describe the image.", truth, {"objects": objects})
    assert exact.score(right).reward == 1.0 == partial.score(right).reward
    wrong = ScoringItem("caption", "describe the image.", "a purple cross and " + truth, {"objects": objects})
    rec: dict[str, list[Any]] = defaultdict(list)
    task = next(t for t in sample.eval_tasks() if t.skill == "caption")
    evaluate.score(sample, task, wrong.output, rec)
    assert exact.score(wrong).reward == float(rec["caption_content"][0])
    assert 0.0 < partial.score(wrong).reward < 1.0 or {o["colour"] for o in objects} == {"purple"}
    assert _one("colour_mention").score(right).reward == 1.0
    # a correction is ground truth too
    corrected = ScoringItem("caption", "describe the image.", "a red circle.", {"correction": "a red circle."})
    assert exact.score(corrected).reward == 1.0


def test_detection_and_point_metrics_on_world_truth() -> None:
    sample = get_sample("test", 7, 64)
    objects = [{"colour": o.colour, "shape": o.shape, "box": list(o.box)} for o in sample.objects]
    target = sample.objects[0]
    boxes = sample.detect_targets()[target.name]
    perfect = json.dumps({"text": format_boxes(boxes), "boxes": [list(b) for b in boxes]})
    item = ScoringItem("detect", f"detect {target.name}.", perfect, {"objects": objects})
    assert _one("detection_iou").score(item).reward == pytest.approx(1.0)
    assert _one("detection_f1").score(item).reward == pytest.approx(1.0)
    assert _one("false_positive_rate").score(item).reward == 0.0
    extra = ScoringItem("detect", f"detect {target.name}.", format_boxes([*boxes, (0.0, 0.0, 0.01, 0.01)]),
                        {"objects": objects})
    assert _one("false_positive_rate").score(extra).reward == pytest.approx(1 / (len(boxes) + 1))
    assert _one("false_positive_rate", weight=-2.0).score(extra).reward == pytest.approx(-2 / (len(boxes) + 1))
    moondream = json.dumps({"objects": [{"x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3]} for b in boxes]})
    assert _one("detection_iou").score(ScoringItem("detect", f"detect {target.name}.", moondream,
                                                   {"objects": objects})).reward == pytest.approx(1.0)
    points = sample.point_targets()[target.name]
    hit = ScoringItem("point", f"point at {target.name}.", format_points(points), {"objects": objects})
    miss = ScoringItem("point", f"point at {target.name}.", "none", {"objects": objects})
    assert _one("point_hit_rate").score(hit).reward == 1.0
    assert _one("point_hit_rate").score(miss).reward == 0.0
    spray = ScoringItem("point", f"point at {target.name}.", format_points([*points, (0.99, 0.99), (0.98, 0.01)]),
                        {"objects": objects})
    assert _one("point_hit_rate").score(spray).reward == 1.0  # extra points cost nothing here ...
    assert _one("point_f1").score(spray).reward == pytest.approx(2 * len(points) / (2 * len(points) + 2))  # ... here
    assert _one("point_f1").score(hit).reward == 1.0
    assert _one("point_f1").score(miss).reward == 0.0
    assert _one("detection_iou").score(hit).terms == {}  # not a detect item: the term does not apply


def test_human_and_pairwise_metrics() -> None:
    human, pair = _one("human_rating"), _one("pairwise_preference")
    assert human.score(ScoringItem("query", "q", "a", rating={"kind": "score", "value": 4})).reward == 0.75
    assert human.score(ScoringItem("query", "q", "a", rating={"kind": "thumbs", "value": "up"})).reward == 1.0
    assert human.score(ScoringItem("query", "q", "a", rating={"kind": "flag", "value": "wrong"})).reward == 0.0
    assert pair.score(ScoringItem("query", "q", "a", preferred=True)).reward == 1.0
    assert pair.score(ScoringItem("query", "q", "a", preferred=False)).reward == 0.0


def test_trl_callable_accepts_strings_and_conversations() -> None:
    spec = parse_reward_function({"terms": [{"metric": "exact_match", "weight": 1.0},
                                            {"metric": "output_length", "weight": -0.1, "params": {"max_words": 10}}]})
    reward = as_trl_reward(spec, "query-exact")
    assert reward.__name__ == "query_exact"
    prompts = [[{"role": "user", "content": "what colour is the circle?"}], "how many shapes are there?"]
    completions = [[{"role": "assistant", "content": "red"}], "three"]
    got = reward(prompts, completions, skill=["query", "query"],
                 reference=[json.dumps({"answer": "red"}), {"answer": "two"}], latency_ms=[12.0, None])
    assert got == pytest.approx([1.0 - 0.01, -0.01])


def test_trl_callable_reads_the_object_from_multimodal_prompts() -> None:
    """TRL hands GRPO rewards the prompt as multimodal messages whose image part has `text: None`;
    the object a point/detect prompt names must still be found, or every answer scores as if the
    object were absent (and training learns to answer `none`)."""
    spec = parse_reward_function({"terms": [{"metric": "point_hit_rate", "weight": 1.0}]})
    reward = as_trl_reward(spec)
    prompt = [{"role": "user", "content": [{"type": "image", "text": None, "image": object()},
                                           {"type": "text", "text": "point at orange triangle."}]}]
    ref = {"objects": [{"colour": "orange", "shape": "triangle", "box": [0.13, 0.27, 0.29, 0.42]},
                       {"colour": "green", "shape": "triangle", "box": [0.16, 0.69, 0.41, 0.94]}]}
    hit, miss = [{"role": "assistant", "content": "<x_9> <y_17>"}], [{"role": "assistant", "content": "none"}]
    got = reward([prompt, prompt], [hit, miss], skill=["point", "point"], reference=[json.dumps(ref)] * 2)
    assert got == [1.0, 0.0]
