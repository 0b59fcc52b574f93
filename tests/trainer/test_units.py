"""The trainer's pure parts: reward events -> training rows per method, the release gate,
config validation, and Moondream-style rewards from ground truth."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from dreamforge.events import new_meta
from dreamforge.grpcio import InvalidArgument
from dreamforge.image_store import ImageStore
from dreamforge.images import encode_png
from dreamforge.v1 import events_pb2
from dreamforge.world import get_sample
from services.trainer.config import Gate, parse_config
from services.trainer.data import (
    FEEDBACK_START,
    REPLAY_START,
    feedback_rows,
    rater_feedback,
    replay_rows,
    rows_from_reward,
    synthetic_rows,
    to_trl,
)
from services.trainer.gate import decide
from services.trainer.tuning import reward_of


def payload(**fields: object) -> dict[str, object]:
    values: dict[str, object] = {"skill": "query", "prompt": "what colour?", **fields}
    event = events_pb2.RewardScored(meta=new_meta("t1", "feedback", "e1"), **values)  # type: ignore[arg-type]
    return dict(json.loads(json_format.MessageToJson(event, indent=None)))


def test_pairwise_and_correction_events_become_dpo_and_sft_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref = ImageStore(tmp_path / "images").save("t1", encode_png(get_sample("test", 1, 96).image))
    pair = rows_from_reward(payload(image_ref=ref, output_json='{"answer": "red"}',
                                    rejected_output_json='{"answer": "blue"}'), str(tmp_path / "images"))
    fix = rows_from_reward(payload(image_ref=ref, output_json='{"answer": "blue"}', correction="red"),
                           str(tmp_path / "images"))
    assert pair is not None and (pair["chosen"], pair["rejected"]) == ("red", "blue")
    assert fix is not None and fix["target"] == "red" and fix["reference"] == {"answer": "red"}
    dpo = to_trl("dpo", [pair, fix])
    assert len(dpo) == 1 and dpo[0]["chosen"][0]["content"][0]["text"] == "red" and len(dpo[0]["images"]) == 1
    sft = to_trl("sft", [pair, fix])
    assert len(sft) == 1 and sft[0]["completion"][0]["content"][0]["text"] == "red"
    grpo = to_trl("grpo", [pair, fix])
    assert len(grpo) == 2 and all(r["image"].size == (96, 96) for r in grpo)
    gone = rows_from_reward(payload(image_ref="f" * 64, output_json='{"answer": "red"}'), str(tmp_path / "images"))
    assert gone is not None and to_trl("grpo", [gone]) == []  # image purged: the row is skipped, never guessed
    assert rows_from_reward(payload(skill="segment", image_ref=ref)) is None


def test_synthetic_preferences_prefer_the_truth() -> None:
    rows = synthetic_rows("dpo", "test", 0, 3, ["query"])
    assert rows and all(r["chosen"] != r["rejected"] and r["reference"]["answer"] == r["chosen"] for r in rows)


def test_simulated_raters_give_feedback_only_where_the_policy_is_wrong() -> None:
    """Synthetic dpo/sft data stands for raters: where the policy answered wrong a correction (sft) or
    a preference for the truth over its own answer (dpo); where right an acceptance (sft) or a
    preference for the truth over another plausible wrong answer (dpo)."""
    sft = feedback_rows("sft", 2, ["query"], seed=0)
    assert sft and all(r["simulated"] and "target" not in r and r["world"][1] >= FEEDBACK_START for r in sft)
    answers = [r["truth"].upper() + "." if i % 2 else "wrong" for i, r in enumerate(sft)]  # every other one right
    fed = rater_feedback("sft", sft, answers)
    assert [r["target"] for r in fed] == [r["truth"] for r in sft]  # corrections and acceptances
    assert [r["corrected"] for r in fed] == [i % 2 == 0 for i in range(len(sft))]
    assert all("simulated" not in r and "truth" not in r for r in fed) and len(to_trl("sft", fed)) == len(fed)
    dpo = feedback_rows("dpo", 2, ["query", "caption"], seed=1)
    assert dpo and {r["skill"] for r in dpo} == {"query"}
    pairs = rater_feedback("dpo", dpo, ["purple"] * len(dpo))
    assert len(pairs) == len(dpo)
    assert all(p["chosen"] == r["truth"] != p["rejected"] for p, r in zip(pairs, dpo, strict=True))
    assert [p["rejected"] == "purple" for p in pairs] == [r["truth"] != "purple" for r in dpo]  # its own, if wrong


def test_concise_raters_want_the_short_caption_of_every_normal_or_long_caption() -> None:
    """`concise` raters judge captions by a house style: the short form ("a red circle and two blue
    stars."), whatever length the prompt asked for; the held-out sets measure the same judgement."""
    for i in range(6):
        sample = get_sample("test", i, 96)
        asked = [t for t in sample.eval_tasks() if t.skill == "caption"]
        held = synthetic_rows("sft", "test", i, 1, ["caption", "query"], raters="concise")
        pairs = synthetic_rows("dpo", "test", i, 1, ["caption"], raters="concise")
        if all(t.kind == "short" for t in asked):  # nothing to correct
            assert held == [] and pairs == []
            continue
        assert [r["target"] for r in held] == [sample.caption("short")] and held[0]["skill"] == "caption"
        assert [(r["chosen"], r["rejected"]) for r in pairs] == [(sample.caption("short"), asked[0].answer)]
    fed_rows = feedback_rows("dpo", 6, ["caption"], seed=0, raters="concise")
    assert fed_rows and all(r["skill"] == "caption" and r["prompt"] != "describe the image briefly." for r in fed_rows)
    already_short = rater_feedback("dpo", fed_rows, [r["truth"] for r in fed_rows])  # the policy was concise
    assert all(p["chosen"] == r["truth"] and p["rejected"] == r["usual"] != r["truth"] and not p["corrected"]
               for p, r in zip(already_short, fed_rows, strict=True))
    assert all("usual" not in p for p in already_short)
    sft = feedback_rows("sft", 6, ["caption"], seed=0, raters="concise")
    fixed = rater_feedback("sft", sft, ["a small red circle on a plain grey background."] * len(sft))
    assert [r["target"] for r in fixed] == [r["truth"] for r in sft] and all(r["corrected"] for r in fixed)


def test_replay_rows_are_other_images_waiting_for_the_policys_answers() -> None:
    rows = replay_rows(4, ["detect", "point", "query"], seed=1)
    assert rows and {r["skill"] for r in rows} == {"detect", "point", "query"}
    assert all(r["replay"] and "target" not in r and r["world"][1] >= REPLAY_START + 4 for r in rows)
    feedback = {r["world"][1] for r in feedback_rows("sft", 4, ["caption"], seed=1, raters="concise")}
    assert feedback.isdisjoint(r["world"][1] for r in rows)


def test_gate_needs_a_gain_and_no_drop() -> None:
    before = {"heldout_reward": 1.0, "query_em": 0.60, "heldout_query_em": 0.5}
    ok = decide("grpo", before, {"heldout_reward": 1.1, "query_em": 0.59, "heldout_query_em": 0.5}, Gate())
    assert ok["passed"] and ok["gain"] == pytest.approx(0.1)
    flat = decide("grpo", before, {**before}, Gate())
    assert not flat["passed"] and "did not rise" in flat["reasons"][0]
    drop = decide("grpo", before, {"heldout_reward": 1.5, "query_em": 0.55, "heldout_query_em": 0.5}, Gate())
    assert not drop["passed"] and "query_em dropped by 0.0500" in drop["reasons"][0]


@pytest.mark.parametrize(("method", "raw", "message"), [
    ("grpo", {"beta": 0}, "config.beta must be > 0"),
    ("grpo", {"steps": 1.5}, "config.steps must be an integer"),
    ("sft", {"skills": ["segment"]}, "config.skills"),
    ("sft", {"gate": {"max_skill_drop": 2}}, "config.gate.max_skill_drop"),
    ("sft", "[1]", "config must be a JSON object"),
    ("rl", {}, "method 'rl' is invalid"),
    ("sft", {"raters": "strict"}, "config.raters must be one of accurate, concise"),
    ("sft", {"raters": "concise"}, "config.skills must be"),
    ("grpo", {"raters": "concise", "skills": ["caption"]}, "config.raters applies to dpo and sft"),
    ("dpo", {"skills": ["caption"]}, "config.skills: dpo's synthetic preferences exist for query only"),
    ("dpo", {"replay_images": 8}, "config.replay_images applies to sft"),
])
def test_config_errors_name_the_field(method: str, raw: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace(".", r"\.").replace("[", r"\[")):
        parse_config(method, raw)  # type: ignore[arg-type]


def test_defaults_guard_against_reward_hacking() -> None:
    cfg = parse_config("grpo", {}).resolved("grpo")
    assert cfg.beta > 0 and cfg.max_completion_length == 16 and cfg.learning_rate <= 5e-3


def test_moondream_rewards_from_ground_truth() -> None:
    box = {"x_min": 0.1, "y_min": 0.1, "x_max": 0.3, "y_max": 0.3}
    assert reward_of("point", {"points": [{"x": 0.2, "y": 0.2}]}, {"boxes": [box]}) == 1.0
    assert reward_of("point", {"points": [{"x": 0.9, "y": 0.9}]}, {"points": [{"x": 0.2, "y": 0.2}]}) == 0.0
    assert reward_of("detect", {"objects": [box]}, {"boxes": [box]}) == 1.0
    assert reward_of("detect", {"objects": []}, {"boxes": [box]}) == 0.0
    assert reward_of("query", {"answer": "red"}, {}) is None


def test_a_shorter_caption_scores_higher_under_a_minimised_length_term() -> None:
    from dreamforge.rewards import as_trl_reward, parse_reward_function

    spec = parse_reward_function({"terms": [
        {"metric": "colour_mention", "weight": 1.0},
        {"metric": "output_length", "weight": 0.5, "direction": "minimize", "params": {"max_words": 30}}]})
    ref = json.dumps({"objects": [{"colour": "red", "shape": "circle", "bbox": [0, 0, 9, 9]}]})
    short, long = "a red circle.", "there is a red circle in the middle of a plain white picture here."
    rewards = as_trl_reward(spec)(["p", "p"], [short, long], skill=["caption"] * 2, reference=[ref] * 2)
    assert rewards[0] > rewards[1]


def test_a_caption_job_is_still_guarded_by_heldout_query_em(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dreamforge.rewards import parse_reward_function
    from services.trainer import heldout as H

    rows, guard = H.heldout_sets("grpo", ["caption"], 3, seed=1)
    assert rows and {r["skill"] for r in rows} == {"caption"}
    assert guard and {r["skill"] for r in guard} == {"query"}
    assert H.heldout_sets("grpo", ["query"], 3, seed=1)[1] == []  # a query job measures its own rows

    class Model:
        training = False

        def eval(self) -> None: ...

        def train(self, mode: bool = True) -> None: ...

    class FakeSkills:
        model = Model()

    def fake_answers(skills: object, batch: list[dict[str, object]]) -> list[str]:
        return [r["reference"]["answer"] if r["skill"] == "query" else "a red circle"  # type: ignore[index]
                for r in batch]

    monkeypatch.setattr(H, "skill_metrics", lambda skills, n: {})
    monkeypatch.setattr(H, "answers", fake_answers)
    spec = parse_reward_function({"terms": [{"metric": "colour_mention", "weight": 1.0}]})
    metrics = H.evaluate_policy(FakeSkills(), "grpo", spec, rows, 0, guard)  # type: ignore[arg-type]
    assert metrics["heldout_query_em"] == 1.0  # measured on the held-out queries, so the gate guards it
    assert metrics["heldout_caption_words"] == 3.0 and "heldout_caption_content" in metrics
