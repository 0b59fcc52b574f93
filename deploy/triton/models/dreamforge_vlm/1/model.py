"""Triton Python-backend entry point of the DreamForge VLM: tensors in, tensors out.

Deliberately thin: the model work (batched generation, streaming, PEFT adapters with an LRU memory
budget) is `services.inference.runtime.triton_backend.BackendEngine`, shared with the in-process
torch runtime. The backend stub must import that package, torch and transformers from DreamForge's
environment: `dreamforge.triton_server.TritonServer` arranges it (its docstring says how; a server
started by hand needs the same).

The model is decoupled (config.pbtxt): `execute` answers through each request's response sender
and returns None. Every request ends with one response whose FINAL is true (the whole answer and
its token counts) or with an error response; a STREAM request gets FINAL=false pieces before it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

if TYPE_CHECKING:
    from services.inference.runtime.triton_backend import BackendRequest, Reply
else:  # imported in initialize(), not here: Triton also imports this file in a short-lived stub to
    BackendRequest = Reply = None  # auto-complete the config, and torch + transformers take seconds to import


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        global BackendRequest, Reply
        from services.inference.runtime.triton_backend import BackendEngine, BackendRequest, Reply

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        base_dir = params.get("base_dir") or os.environ.get("DREAMFORGE_TRITON_BASE_DIR", "")
        if not base_dir:
            raise ValueError("set the model parameter base_dir (or DREAMFORGE_TRITON_BASE_DIR) to a checkpoint dir")
        budget = int(params.get("adapter_memory_budget_bytes") or
                     float(params.get("adapter_memory_budget_mb") or 512) * 1024 * 1024)
        self.engine = BackendEngine(base_dir, memory_budget_bytes=budget, device=_device(args, params),
                                    threads=int(params.get("torch_threads") or 0))

    def execute(self, requests: list[Any]) -> None:
        senders = [request.get_response_sender() for request in requests]

        def send(index: int, reply: Reply) -> None:
            flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if reply.final else 0
            senders[index].send(_response(reply), flags=flags)

        parsed: list[BackendRequest] = []
        positions: list[int] = []
        for index, request in enumerate(requests):
            try:
                parsed.append(_parse(request))
                positions.append(index)
            except Exception as exc:
                send(index, Reply(error=exc))
        self.engine.handle(parsed, lambda i, reply: send(positions[i], reply),
                           cancelled=lambda i: bool(requests[positions[i]].is_cancelled()))
        return None

    def finalize(self) -> None:
        self.engine = None  # type: ignore[assignment]


def _device(args: dict[str, Any], params: dict[str, str]) -> str | None:
    """cuda:<id> for a KIND_GPU instance; otherwise the `device` parameter (auto = cuda when available)."""
    if args.get("model_instance_kind") == "GPU":
        return f"cuda:{args.get('model_instance_device_id', 0)}"
    wanted = params.get("device") or "auto"
    return None if wanted == "auto" else wanted


def _input(request: Any, name: str) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise ValueError(f"{name} holds {values.size} values: send one call per request (Triton batches them)")
    return values[0]


def _text(request: Any, name: str) -> str:
    value = _input(request, name)
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse(request: Any) -> BackendRequest:
    image = _input(request, "IMAGE")
    limit = _input(request, "MAX_NEW_TOKENS")
    stream = _input(request, "STREAM")
    return BackendRequest(
        skill=_text(request, "SKILL"), image=bytes(image) if image is not None else b"", text=_text(request, "TEXT"),
        adapter_sha=_text(request, "ADAPTER_SHA"), adapter_path=_text(request, "ADAPTER_PATH"),
        max_new_tokens=int(limit) if limit is not None else 0, stream=bool(stream) if stream is not None else False)


def _response(reply: Reply) -> Any:
    if reply.error is not None:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(reply.error).__name__}: {reply.error}"))
    return pb_utils.InferenceResponse(output_tensors=[
        pb_utils.Tensor("OUTPUT_TEXT", np.array([[reply.text.encode("utf-8")]], dtype=np.object_)),
        pb_utils.Tensor("INPUT_TOKENS", np.array([[reply.input_tokens]], dtype=np.int32)),
        pb_utils.Tensor("OUTPUT_TOKENS", np.array([[reply.output_tokens]], dtype=np.int32)),
        pb_utils.Tensor("FINAL", np.array([[reply.final]], dtype=np.bool_)),
    ])
