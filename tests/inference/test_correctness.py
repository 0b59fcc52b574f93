"""Answer correctness with the trained default model, over gRPC against the real service:
every skill's answers on held-out world images are (a) exactly what the model package's
`Skills` answers in-process for the same inputs (the service adds no drift: same prompts,
same decoding, lossless image transport) and (b) right against the world's ground truth,
within margins of the model's evaluation targets (`dreamforge.model.evaluate.TARGETS`).

Skipped until `models/default` is built (or DREAMFORGE_TEST_TRAINED_MODEL names a checkpoint).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dreamforge.grpcio import channel
from dreamforge.images import encode_png
from dreamforge.model.evaluate import score, summarise
from dreamforge.model.skills import MAX_NEW_TOKENS, NUM_BEAMS, Skills
from dreamforge.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from dreamforge.world import Task, get_sample, parse_boxes, parse_points, readable
from services.inference.main import build as build_inference
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from tests.helpers import platform_settings, running_service
from tests.inference.conftest import TRAINED_MODEL, needs_trained_model

pytestmark = needs_trained_model
N_IMAGES = 16


def minimum_scores() -> dict[str, float]:
    """Floors from the checkpoint's own held-out evaluation (its eval.json): served answers must
    keep at least half of what the model scored offline on every skill it measurably has (≥ 0.2).
    A skill the committed model has not learned yet (README: detect and point) has no floor here;
    its answers are still checked to be exactly the model's own, parsed the same way."""
    report = json.loads((Path(TRAINED_MODEL) / "eval.json").read_text())
    held_out = report.get("test", report)
    return {name: 0.5 * held_out[name] for name in ("query_em", "caption_content", "detect_miou", "point_hit_rate")
            if held_out.get(name, 0.0) >= 0.2}


@pytest.fixture(scope="module")
async def trained_stub(shared_nats_url: str, tmp_path_factory: pytest.TempPathFactory,
                       ) -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    home = tmp_path_factory.mktemp("trained")
    async with running_service("registry", build_registry, platform_settings(home / "registry", shared_nats_url)) \
            as registry:
        settings = InferenceSettings(home=home / "inference", nats_url=shared_nats_url, log_format="text",
                                     registry_addr=f"127.0.0.1:{registry.port}", default_model=TRAINED_MODEL)
        async with running_service("inference", build_inference, settings) as inference, \
                channel(f"127.0.0.1:{inference.port}") as ch:
            yield inference_pb2_grpc.InferenceServiceStub(ch)  # type: ignore[no-untyped-call]


def _object(task: Task) -> str:
    return task.prompt.split(" ", 2 if task.skill == "point" else 1)[-1].rstrip(".")


async def _ask(stub: inference_pb2_grpc.InferenceServiceStub, task: Task, image: inference_pb2.Image,
               ) -> inference_pb2.SkillResponse:
    caller = common_pb2.Caller(tenant_id="t_correct", key_id="k")
    if task.skill == "caption":
        return await stub.Caption(inference_pb2.CaptionRequest(caller=caller, image=image, length=task.kind))
    if task.skill == "query":
        return await stub.Query(inference_pb2.QueryRequest(caller=caller, image=image, question=task.prompt))
    if task.skill == "detect":
        return await stub.Detect(inference_pb2.DetectRequest(caller=caller, image=image, object=_object(task)))
    return await stub.Point(inference_pb2.PointRequest(caller=caller, image=image, object=_object(task)))


def _in_process(skills: Skills, task: Task, sample: Any) -> str:
    return skills.generate([sample.image], [task.prompt], MAX_NEW_TOKENS[task.skill], NUM_BEAMS[task.skill])[0]


async def test_every_skill_matches_the_model_and_the_ground_truth(
        trained_stub: inference_pb2_grpc.InferenceServiceStub) -> None:
    skills = Skills.from_pretrained(TRAINED_MODEL)
    size = skills.processor.image_processor.max_image_size["longest_edge"]
    rec: dict[str, list[Any]] = defaultdict(list)
    for index in range(N_IMAGES):
        sample = get_sample("test", index, size)
        image = inference_pb2.Image(data=encode_png(sample.image))
        for task in sample.eval_tasks():
            reply = await _ask(trained_stub, task, image)
            raw = _in_process(skills, task, sample)  # detect / point: the model's location tokens
            assert reply.text == readable(task.skill, raw), task
            if task.skill == "detect":
                assert [(b.x_min, b.y_min, b.x_max, b.y_max) for b in reply.objects] == parse_boxes(raw)
            if task.skill == "point":
                assert [(p.x, p.y) for p in reply.points] == parse_points(raw)
            score(sample, task, reply.text, rec)
    metrics = summarise(rec)
    floors = minimum_scores()
    assert "query_em" in floors, "the default model must at least answer questions"
    for name, minimum in floors.items():
        assert metrics[name] >= minimum, (name, metrics)
