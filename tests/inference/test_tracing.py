"""Each generation is one `model.generate` span, under the request that asked for it: a child of
the (first) call's span, linked to the other calls of its batch, with its timings attached."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dreamforge.tracing import configure_tracing, tracer
from dreamforge.world import get_sample
from services.inference.runtime.base import SkillCall
from services.inference.runtime.torch_runtime import TorchRuntime


async def test_a_generation_span_is_a_child_of_its_request_and_links_the_rest_of_its_batch(
        tiny_model_dir: Path) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("inference-test", exporter=exporter)
    runtime = TorchRuntime(tiny_model_dir, memory_budget_bytes=1 << 20)
    call = SkillCall("query", get_sample("test", 0).image, "how many shapes are there?", max_new_tokens=2)

    async def asked(name: str) -> trace.SpanContext:
        with tracer("tests").start_as_current_span(name) as span:
            await runtime.run(call)
            return span.get_span_context()

    await runtime.start()
    try:
        first, second = await asyncio.gather(asked("first"), asked("second"))  # one batch of two
        later = await asked("later")  # the batcher's task was started in the first call's context
    finally:
        await runtime.close()

    spans = [s for s in exporter.get_finished_spans() if s.name == "model.generate"]
    assert len(spans) == 2, [s.attributes for s in spans]
    batched, alone = spans
    assert batched.attributes is not None and batched.attributes["model.batch_size"] == 2
    assert batched.parent is not None and batched.context.trace_id == first.trace_id
    assert batched.parent.span_id == first.span_id
    assert [link.context.span_id for link in batched.links] == [second.span_id]
    assert alone.parent is not None and alone.parent.span_id == later.span_id and not alone.links
    assert alone.attributes is not None and alone.attributes["model.batch_size"] == 1
    for key in ("model.inputs_ms", "model.generate_ms", "model.decode_ms"):
        assert float(alone.attributes[key]) > 0, key  # type: ignore[arg-type]
    assert 0 <= int(alone.attributes["model.output_tokens"]) <= 2 and alone.attributes["model.beams"] == 1  # type: ignore[arg-type]
