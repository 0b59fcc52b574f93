"""Training jobs end to end on the real default model: TRL in a worker process, per-step
progress events, held-out evaluation, registration of the adapter, and the release gate."""

from __future__ import annotations

import json

import grpc
import nats
import pytest

from dreamforge.adapters import read_adapter_archive
from dreamforge.events import TRAINING_FINISHED, TRAINING_PROGRESS
from dreamforge.v1 import events_pb2, registry_pb2, registry_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from tests.trainer.conftest import COLOUR_AND_SHORT, Stack, caller, config, make_model, needs_model, wait_final

pytestmark = needs_model


async def test_grpo_job_registers_promotes_and_reports_every_step(
        stack: Stack, trainer_stub: trainer_pb2_grpc.TrainerServiceStub,
        registry_stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    model = await make_model(registry_stub, "t_grpo", "colours")
    nc = await nats.connect(stack.nats_url)
    progress: list[events_pb2.TrainingProgress] = []
    finished: list[events_pb2.TrainingFinished] = []

    async def on_progress(msg) -> None:  # type: ignore[no-untyped-def]
        progress.append(events_pb2.TrainingProgress.FromString(msg.data))

    async def on_finished(msg) -> None:  # type: ignore[no-untyped-def]
        finished.append(events_pb2.TrainingFinished.FromString(msg.data))

    await nc.subscribe(TRAINING_PROGRESS.subject("t_grpo"), cb=on_progress)
    await nc.subscribe(TRAINING_FINISHED.subject("t_grpo"), cb=on_finished)
    try:
        job = await trainer_stub.CreateJob(trainer_pb2.CreateJobRequest(
            caller=caller("t_grpo"), model="colours", method="grpo", reward_function_json=json.dumps(COLOUR_AND_SHORT),
            config_json=config(gate={"min_gain": -1.0, "max_skill_drop": 1.0}), idempotency_key="first"))
        assert job.status in ("queued", "running") and job.model == "colours"
        again = await trainer_stub.CreateJob(trainer_pb2.CreateJobRequest(
            caller=caller("t_grpo"), model="colours", method="grpo", reward_function_json=json.dumps(COLOUR_AND_SHORT),
            config_json=config(), idempotency_key="first"))
        assert again.id == job.id
        done = await wait_final(trainer_stub, "t_grpo", job.id)
        assert done.status == "succeeded", done.reason
        assert [p.step for p in done.history] == [1, 2]
        assert all(p.total_steps == 2 and p.samples_per_second > 0 for p in done.history)
        assert "heldout_reward" in done.eval_before and "query_em" in done.eval_after
        assert done.promoted and done.result_version == 1
        version = await registry_stub.GetVersion(registry_pb2.GetVersionRequest(
            caller=caller("t_grpo"), model=model.id, version=1))
        assert version.eval_metrics["after.heldout_reward"] == pytest.approx(done.eval_after["heldout_reward"])
        assert json.loads(version.training_config_json)["method"] == "grpo"
        assert json.loads(version.reward_function_json)["terms"][0]["metric"] == "colour_mention"
        chunks = [c.data async for c in registry_stub.GetArtifact(registry_pb2.GetVersionRequest(
            caller=caller("t_grpo"), model=model.id, version=1))]
        assert set(read_adapter_archive(b"".join(chunks))) == {"adapter_config.json", "adapter_model.safetensors"}
        resolved = await registry_stub.Resolve(registry_pb2.ResolveRequest(caller=caller("t_grpo"),
                                                                           reference="colours"))
        assert resolved.version.version == 1
        await nc.flush()
        assert sorted({p.step for p in progress}) == [1, 2] and finished and finished[0].promoted
        other = await trainer_stub.ListJobs(trainer_pb2.ListJobsRequest(caller=caller("t_other")))
        assert list(other.jobs) == []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await trainer_stub.GetJob(trainer_pb2.GetJobRequest(caller=caller("t_other"), job_id=job.id))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await nc.close()


@pytest.mark.parametrize(("field", "request_fields", "message"), [
    ("method", {"method": "ppo"}, "method 'ppo' is invalid"),
    ("model", {"model": ""}, "model is required"),
    ("reward", {"reward_function_json": ""}, "reward_function is required for grpo"),
    ("reward term", {"reward_function_json": '{"terms": [{"metric": "nope", "weight": 1}]}'},
     "reward_function.terms[0].metric"),
    ("config", {"config_json": '{"beta": 0}'}, "config.beta must be > 0"),
    ("config lr", {"config_json": '{"learning_rate": 0.5}'}, "config.learning_rate"),
    ("config key", {"config_json": '{"stepz": 3}'}, "config.stepz is not a known setting"),
])
async def test_bad_jobs_are_refused_naming_the_field(
        trainer_stub: trainer_pb2_grpc.TrainerServiceStub, field: str, request_fields: dict[str, str],
        message: str) -> None:
    fields = {"model": "colours", "method": "grpo", "reward_function_json": json.dumps(COLOUR_AND_SHORT),
              **request_fields}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await trainer_stub.CreateJob(trainer_pb2.CreateJobRequest(caller=caller("t_bad"), **fields))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def test_unknown_model_is_not_found(trainer_stub: trainer_pb2_grpc.TrainerServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await trainer_stub.CreateJob(trainer_pb2.CreateJobRequest(
            caller=caller("t_bad"), model="nothing-here", method="sft"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
