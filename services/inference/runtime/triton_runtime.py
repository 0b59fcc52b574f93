"""The `triton` model runtime: the VLM served by a Triton Inference Server, called over gRPC.

Same contract and same answers as the torch runtime (`base.py`); the model work itself runs in
Triton's Python backend (`triton_backend.py`, on the torch runtime's code). Why Triton at all:
its dynamic batcher merges concurrent requests from any number of inference processes into one
`execute`, model instances can be placed on GPUs, and it exposes per-model statistics.

* **Server and model.** `start()` gets a model of its own on the process's Triton host (see
  `triton_host.py`: a private server, or `DREAMFORGE_TRITON_URL` in explicit model-control mode).
* **Calls.** The model is decoupled, so every call -- unary or streamed -- is one request on a
  gRPC stream (`stream_infer`): a unary call reads the single FINAL response, a streamed one yields
  the FINAL=false pieces and keeps the final response (text + token counts) in `TextStream.output`.
  Concurrent `run()`s are separate requests that Triton batches; nothing is batched here.
* **Adapters.** Sent by sha256 + directory (which must exist at that path on the server's side);
  the backend loads them with PEFT, keyed by sha, LRU within `memory_budget_bytes`. `load_adapter`
  and `loaded_adapters` are requests with the control skills `load` / `adapters`.
* **Errors.** The backend names the exception class (`ValueError: ...`); ValueError, KeyError and
  AdapterLoadError come back as themselves, anything else as RuntimeError.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from dreamforge.images import encode_ppm
from dreamforge.world import parse_boxes, parse_points, readable
from services.inference.runtime.base import (
    AdapterLoadError,
    AdapterRef,
    LoadedAdapter,
    SkillCall,
    SkillOutput,
    TextStream,
)
from services.inference.runtime.triton_host import ModelSettings, TritonHost, gpu_visible, host_for
from services.inference.settings import InferenceSettings

KEEP_WARM_S = float(os.environ.get("DREAMFORGE_TRITON_KEEP_WARM_S", "60"))
LARGE_IMAGE_PIXELS = 512 * 512
_ERRORS: dict[str, type[Exception]] = {"ValueError": ValueError, "KeyError": KeyError,
                                       "AdapterLoadError": AdapterLoadError, "AdapterError": AdapterLoadError}


@dataclass(frozen=True)
class _Reply:
    text: str
    input_tokens: int
    output_tokens: int
    final: bool


class TritonRuntime:
    name = "triton"

    def __init__(self, base_dir: str | Path, *, memory_budget_bytes: int, max_batch_size: int = 8,
                 batch_window_s: float = 0.005, url: str | None = None, work_dir: Path | None = None,
                 device: str = "auto", torch_threads: int = 0, keep_warm_s: float = KEEP_WARM_S) -> None:
        self.model = ModelSettings(
            base_dir=Path(base_dir).resolve(), memory_budget_bytes=memory_budget_bytes,
            max_batch_size=max_batch_size, queue_delay_us=int(batch_window_s * 1_000_000), device=device,
            torch_threads=torch_threads, gpu=device == "cuda" or (device == "auto" and url is None and gpu_visible()))
        self.url, self.work_dir, self.keep_warm_s = url, work_dir, keep_warm_s
        self.host: TritonHost | None = None
        self.model_name = ""
        self._client: aioclient.InferenceServerClient | None = None
        self._start_lock = asyncio.Lock()

    # -- ModelRuntime -------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._client is not None:
                return
            host = host_for(self.url, self.work_dir)
            try:
                name, reused = await asyncio.to_thread(host.acquire, self.model)
            except InferenceServerException as exc:
                raise RuntimeError(f"Triton could not load the model for {self.model.base_dir}: "
                                   f"{exc.message()}") from None
            self.host, self.model_name = host, name
            self._client = aioclient.InferenceServerClient(host.url)
            if reused:  # a warm model another runtime left: start from no adapters, like a fresh one
                await self._control("reset")

    async def run(self, call: SkillCall) -> SkillOutput:
        await self.start()
        replies = [reply async for reply in self._request(await _call_inputs(call, stream=False))]
        return _output(call, replies[-1])

    def stream(self, call: SkillCall) -> TextStream:
        stream: TextStream

        async def pieces() -> AsyncIterator[str]:
            await self.start()
            async for reply in self._request(await _call_inputs(call, stream=True)):
                if reply.final:
                    stream.output = _output(call, reply)
                else:
                    yield reply.text

        stream = TextStream(pieces())
        return stream

    async def load_adapter(self, adapter: AdapterRef) -> None:
        await self.start()
        await self._control("load", adapter)

    async def loaded_adapters(self) -> list[LoadedAdapter]:
        await self.start()
        return [LoadedAdapter(sha, size) for sha, size in json.loads(await self._control("adapters"))]

    async def statistics(self) -> tuple[int, int]:
        """(requests served, execute() calls) of this runtime's Triton model since it was loaded."""
        await self.start()
        assert self.host is not None
        return await asyncio.to_thread(self.host.statistics, self.model_name)

    async def close(self) -> None:
        async with self._start_lock:
            client, self._client = self._client, None
            if client is None or self.host is None:
                return
            await client.close()
            await asyncio.to_thread(self.host.release, self.model_name, self.keep_warm_s)

    # -- requests -----------------------------------------------------------------------------
    async def _control(self, verb: str, adapter: AdapterRef | None = None) -> str:
        inputs = _inputs(verb, b"", "", adapter, 0, stream=False)
        replies = [reply async for reply in self._request(inputs)]
        return replies[-1].text

    async def _request(self, inputs: list[grpcclient.InferInput]) -> AsyncIterator[_Reply]:
        """The replies to one request, up to its final one (the gRPC stream is cancelled if the
        caller stops early, which stops the generation on the server)."""
        if self._client is None:
            raise RuntimeError("the triton runtime is closed")
        name = self.model_name

        async def requests() -> AsyncIterator[dict[str, object]]:
            yield {"model_name": name, "inputs": inputs}

        responses = self._client.stream_infer(requests())
        try:
            async for result, error in responses:
                if error is not None:
                    raise _error(error)
                reply = _Reply(_scalar(result, "OUTPUT_TEXT").decode("utf-8"), int(_scalar(result, "INPUT_TOKENS")),
                               int(_scalar(result, "OUTPUT_TOKENS")), bool(_scalar(result, "FINAL")))
                yield reply
                if reply.final:
                    return
            raise RuntimeError("Triton closed the stream before the final response")
        finally:
            responses.cancel()


def create(settings: InferenceSettings, base_dir: Path) -> TritonRuntime:
    """The factory's entry point (`services.inference.runtime.factory.create_runtime`)."""
    url = settings.triton_url if "triton_url" in settings.model_fields_set else None
    return TritonRuntime(base_dir, memory_budget_bytes=settings.adapter_memory_budget_bytes,
                         max_batch_size=settings.max_batch_size, batch_window_s=settings.batch_window_ms / 1000,
                         url=url, work_dir=settings.home.resolve() / "triton", torch_threads=settings.torch_threads)


async def _call_inputs(call: SkillCall, stream: bool) -> list[grpcclient.InferInput]:
    """The call's tensors. The image travels as PPM: lossless, so the backend sees the very pixels the
    torch runtime would, and uncompressed, because PNG's compression cost 2.4 ms of CPU per 96x96
    request on the client and 0.2 ms in the backend, a quarter of a batched request's cost on 2 cores
    (bench/RESULTS.md). A large image is encoded off the event loop."""
    width, height = call.image.size
    data = encode_ppm(call.image) if width * height <= LARGE_IMAGE_PIXELS else await asyncio.to_thread(
        encode_ppm, call.image)
    return _inputs(call.skill, data, call.text, call.adapter, call.max_new_tokens or 0, stream)


def _inputs(skill: str, image: bytes, text: str, adapter: AdapterRef | None, max_new_tokens: int,
            stream: bool) -> list[grpcclient.InferInput]:
    """Every input, always: requests with the same set of inputs can share a batch."""
    values: list[tuple[str, str, object]] = [
        ("SKILL", "BYTES", skill.encode()), ("IMAGE", "BYTES", image), ("TEXT", "BYTES", text.encode("utf-8")),
        ("ADAPTER_SHA", "BYTES", adapter.sha256.encode() if adapter else b""),
        ("ADAPTER_PATH", "BYTES", str(adapter.path).encode() if adapter else b""),
        ("MAX_NEW_TOKENS", "INT32", max_new_tokens), ("STREAM", "BOOL", stream)]
    inputs = []
    for name, datatype, value in values:
        tensor = grpcclient.InferInput(name, [1, 1], datatype)
        dtype = {"BYTES": np.object_, "INT32": np.int32, "BOOL": np.bool_}[datatype]
        tensor.set_data_from_numpy(np.array([[value]], dtype=dtype))
        inputs.append(tensor)
    return inputs


def _scalar(result: grpcclient.InferResult, name: str) -> Any:
    array = result.as_numpy(name)
    if array is None:
        raise RuntimeError(f"Triton's response has no {name}")
    return array.reshape(-1)[0]


def _output(call: SkillCall, reply: _Reply) -> SkillOutput:
    """As `prompts.to_output` (not imported: it would pull torch into this process)."""
    return SkillOutput(text=readable(call.skill, reply.text),
                       boxes=list(parse_boxes(reply.text)) if call.skill == "detect" else [],
                       points=list(parse_points(reply.text)) if call.skill == "point" else [],
                       input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)


def _error(error: InferenceServerException) -> Exception:
    message = error.message() or str(error)
    kind, _, detail = message.partition(": ")
    cls = _ERRORS.get(kind)
    if cls is None:
        return RuntimeError(f"Triton: {message}")
    return cls(detail.strip("'") if cls is KeyError else detail)
