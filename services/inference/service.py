"""The inference service's logic, independent of gRPC: resolve, load, run, record.

Per request: the checked request (validation.py) names a model reference; the resolver
turns it into a route (model, version, base checkpoint, adapter sha); the pool gives the
base's runtime; the adapter files are fetched once per sha; the runtime answers (batched
with concurrent calls) while the image is written to the image store; then
`inference.completed` + `usage.recorded` go into the outbox in one transaction and the
answer is returned (so an answered request survives a crash).

Hot swap: `on_model_updated` (from the durable `model.updated` consumer and a per-replica
core subscription) clears the tenant's cached resolutions at once, so the next request
resolves to the new version, and prefetches that version's adapter onto its runtime in the
background, so the first request after a promotion does not pay for fetching or loading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from dataclasses import replace

from opentelemetry.metrics import CallbackOptions, Observation
from PIL import Image

from dreamforge.activity import Activity
from dreamforge.grpcio import FailedPrecondition, ServiceError
from dreamforge.metrics import meter
from dreamforge.tracing import tracer
from dreamforge.v1 import common_pb2, events_pb2, inference_pb2
from services.inference.artifacts import AdapterFiles
from services.inference.pool import RuntimePool
from services.inference.resolver import Resolver, Route
from services.inference.runtime.base import AdapterLoadError, AdapterRef, ModelRuntime, SkillCall, SkillOutput
from services.inference.served import Served, ServedEvents
from services.inference.settings import InferenceSettings
from services.inference.validation import Limits, Prepared

log = logging.getLogger("dreamforge.inference")
_tracer = tracer("dreamforge.inference")
_meter = meter("dreamforge.inference")
IN_FLIGHT = "dreamforge.inference.requests.in_flight"
#: What the autoscaler scales inference on (deploy/k8s/inference.yaml), as Prometheus names it.
IN_FLIGHT_METRIC = IN_FLIGHT.replace(".", "_")
PREFETCH_MAX_AGE_S = 120.0


class InferenceService:
    def __init__(self, settings: InferenceSettings, resolver: Resolver, adapters: AdapterFiles, pool: RuntimePool,
                 events: ServedEvents) -> None:
        self.settings = settings
        self.resolver = resolver
        self.adapters = adapters
        self.pool = pool
        self.events = events
        self.limits = Limits(settings.max_image_bytes, settings.max_image_pixels)
        self._adapter_names: dict[str, tuple[str, int]] = {}  # sha -> (model_id, version), for ListLoaded
        self._prefetches: set[asyncio.Task[None]] = set()
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        #: Warm adapters on promotion (off when no model can be served at all).
        self.prefetch = True
        #: Requests in flight: the outbox relay publishes their events in a quiet moment.
        self.activity = Activity()
        _meter.create_observable_gauge(
            IN_FLIGHT, callbacks=[self._observe_in_flight],
            description="Skill requests this process is answering (queued for the model, generating, recording): "
                        "the load the autoscaler scales on")
        self._served = _meter.create_histogram(
            "dreamforge.inference.request.duration", unit="ms",
            description="Time to answer a served request (resolution, queue, generation, the events' commit)")

    # -- requests ---------------------------------------------------------------------------
    async def answer(self, request: Prepared) -> inference_pb2.SkillResponse:
        with self.activity.busy():
            started = time.perf_counter()
            route, runtime, call = await self._plan(request)
            image_kept = self.events.keep_image(request)  # the image store write overlaps generation
            try:
                with _tracer.start_as_current_span("inference.generate"):  # batching queue included
                    output = await runtime.run(call)
            except ServiceError:
                raise
            except Exception as exc:
                raise _model_failure(exc) from exc
            return await self._finish(request, route, output, started, image_kept)

    async def stream(self, request: Prepared) -> AsyncIterator[inference_pb2.TextChunk]:
        """Text chunks as generated, then one completed chunk with the whole response."""
        with self.activity.busy():
            async with contextlib.aclosing(self._stream(request)) as chunks:  # closed at once when the caller stops
                async for chunk in chunks:
                    yield chunk

    async def _stream(self, request: Prepared) -> AsyncGenerator[inference_pb2.TextChunk, None]:
        started = time.perf_counter()
        route, runtime, call = await self._plan(request)
        image_kept = self.events.keep_image(request)  # the image store write overlaps generation
        pieces = runtime.stream(call)
        texts: list[str] = []
        try:
            async for piece in pieces:
                texts.append(piece)
                yield inference_pb2.TextChunk(text=piece)
        except ServiceError:
            raise
        except Exception as exc:
            raise _model_failure(exc) from exc
        finally:
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()
        output = getattr(pieces, "output", None) or SkillOutput(text="".join(texts))
        response = await self._finish(request, route, output, started, image_kept)
        yield inference_pb2.TextChunk(completed=True, final=response)

    async def _plan(self, request: Prepared) -> tuple[Route, ModelRuntime, SkillCall]:
        route = await self.resolver.resolve(request.caller, request.reference)
        runtime = await self.pool.get(route.base_checkpoint)
        adapter = await self._adapter(request.caller, route)
        call = SkillCall(skill=request.skill, image=request.image.image, text=request.text, adapter=adapter,
                         max_new_tokens=request.max_new_tokens)
        return route, runtime, call

    async def _adapter(self, caller: common_pb2.Caller, route: Route) -> AdapterRef | None:
        if not route.artifact_sha256:
            return None
        adapter = await self.adapters.ensure(caller, route)
        self._adapter_names[adapter.sha256] = (route.model_id, route.version)
        return adapter

    async def _finish(self, request: Prepared, route: Route, output: SkillOutput, started: float,
                      image_kept: Awaitable[object]) -> inference_pb2.SkillResponse:
        """Record the events (committed before the answer leaves: a crash loses no served request)."""
        latency_ms = (time.perf_counter() - started) * 1000
        if request.max_objects:  # what the caller asked for is what is served, recorded and rated
            output = replace(output, boxes=output.boxes[:request.max_objects],
                             points=output.points[:request.max_objects])
        with _tracer.start_as_current_span("inference.record"):
            await self.events.record(Served(request, route, output, latency_ms), image_kept)
        self._served.record(latency_ms, {"skill": request.skill})
        return inference_pb2.SkillResponse(
            request_id=request.request_id, text=output.text,
            objects=[inference_pb2.Box(x_min=b[0], y_min=b[1], x_max=b[2], y_max=b[3]) for b in output.boxes],
            points=[inference_pb2.Point(x=p[0], y=p[1]) for p in output.points],
            model_id=route.model_id, version=route.version, alias=route.alias, latency_ms=latency_ms,
            input_tokens=output.input_tokens, output_tokens=output.output_tokens)

    # -- hot swap ---------------------------------------------------------------------------
    def on_model_updated(self, event: events_pb2.ModelUpdated) -> None:
        """An alias or preview moved: forget the tenant's resolutions, warm the new adapter.

        Called twice per event (durable consumer + core subscription): the prefetch runs once.
        Old events (a replay after a restart) only invalidate: warming every adapter a tenant
        ever promoted would be a start-up storm."""
        tenant = event.meta.tenant_id
        self.resolver.invalidate(tenant)
        if event.meta.event_id in self._seen_events:
            return
        self._seen_events[event.meta.event_id] = None
        while len(self._seen_events) > 1000:
            self._seen_events.popitem(last=False)
        age_s = time.time() - event.meta.occurred_at.ToMicroseconds() / 1e6
        if self.prefetch and event.version > 0 and event.action != "delete" and event.artifact_sha256 \
                and age_s < PREFETCH_MAX_AGE_S:
            task = asyncio.create_task(self._prefetch(tenant, event.model_id, event.alias))
            self._prefetches.add(task)
            task.add_done_callback(self._prefetches.discard)

    async def _prefetch(self, tenant: str, model_id: str, alias: str) -> None:
        caller = common_pb2.Caller(tenant_id=tenant, key_id="inference")
        try:
            route = await self.resolver.resolve(caller, f"{model_id}@{alias}", fresh=True)
            adapter = await self._adapter(caller, route)
            if adapter is not None:
                runtime = await self.pool.get(route.base_checkpoint)
                await runtime.load_adapter(adapter)
                log.info("adapter prefetched", extra={"tenant_id": tenant, "model_id": model_id, "alias": alias,
                                                      "version": route.version})
        except Exception as exc:  # a request will load it (and report the problem) instead
            log.warning("adapter prefetch failed", extra={"tenant_id": tenant, "model_id": model_id,
                                                          "alias": alias, "error": repr(exc)})

    # -- introspection / lifecycle -------------------------------------------------------------
    def _observe_in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.activity.in_flight)

    async def warm_up(self) -> None:
        """Load the default model and run one short generation before the service reports ready, so the
        first request pays for neither. Why: through `make run` on 2 cores the first caption took 253 ms
        against 65-77 ms for the next ones with torch (one-time allocations and kernel set-up), and 4.8 s
        with Triton, which starts its server and loads the model on first use. A failure is logged, not
        raised: requests then report it, and models on other bases are still served."""
        started = time.perf_counter()
        try:
            runtime = await self.pool.get("")
            await runtime.run(SkillCall(skill="query", image=Image.new("RGB", (64, 64), "white"),
                                        text="what colour is the background?", max_new_tokens=1))
        except Exception as exc:
            log.error("default model warm-up failed", extra={"error": repr(exc)})
            return
        log.info("default model warm", extra={"runtime": runtime.name,
                                              "took_ms": round((time.perf_counter() - started) * 1000, 1)})

    async def list_loaded(self) -> inference_pb2.ListLoadedResponse:
        adapters = []
        for runtime in self.pool.loaded():
            for loaded in await runtime.loaded_adapters():
                model_id, version = self._adapter_names.get(loaded.sha256, ("", 0))
                adapters.append(inference_pb2.LoadedAdapter(model_id=model_id, version=version,
                                                            memory_bytes=loaded.memory_bytes))
        return inference_pb2.ListLoadedResponse(adapters=adapters,
                                                memory_budget_bytes=self.settings.adapter_memory_budget_bytes)

    async def close(self) -> None:
        for task in list(self._prefetches):
            task.cancel()
        await asyncio.gather(*self._prefetches, return_exceptions=True)
        await self.pool.close()


def _model_failure(exc: Exception) -> ServiceError:
    if isinstance(exc, AdapterLoadError):
        return FailedPrecondition(str(exc))
    log.error("model call failed", exc_info=exc)
    return ServiceError(f"the model failed to answer: {type(exc).__name__}: {exc}")
