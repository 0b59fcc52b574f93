"""What runs inside Triton: the DreamForge VLM behind the Python backend's `execute()`.

Why a module of its own rather than all of it in `deploy/triton/models/dreamforge_vlm/1/model.py`:
that file only translates between Triton tensors and `BackendRequest` / `Reply`; the work is done
here on the torch runtime's synchronous core (`TorchRuntime._generate_raw`, `_activated`,
`_ensure_adapter`, `_generate`), so the two runtimes share prompts, left padding, decoding (beams, greedy streams),
token counting, PEFT adapter handling and the LRU memory budget by construction, and so this part
is tested without a Triton server.

One `handle()` call answers one Triton batch (the requests the dynamic batcher collected): control
requests first, then one `generate` per (adapter, skill, token limit) group -- the torch runtime's
batch key -- then streaming requests one at a time (a streamer follows a single sequence). Every
request gets exactly one final reply; a streaming one gets its pieces before it.

Control requests (skill names that are not skills): `load` makes the request's adapter resident
(the hot-swap path of `ModelRuntime.load_adapter`), `adapters` lists the resident ones, `reset`
drops them all (a warm model taken over by a new runtime starts like a fresh one); each answers
with a JSON list of the resident `[sha256, bytes]`, least recently used first.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from PIL import Image

from dreamforge.model.skills import Skills
from services.inference.runtime.base import SKILLS, AdapterRef, SkillCall
from services.inference.runtime.prompts import max_new_tokens, prompt_for
from services.inference.runtime.torch_runtime import TorchRuntime, _PieceStreamer

log = logging.getLogger("dreamforge.inference.triton_backend")

CONTROL_SKILLS = ("load", "adapters", "reset")


@dataclass(frozen=True)
class BackendRequest:
    skill: str                 # a Skill, or a control verb (CONTROL_SKILLS)
    image: bytes = b""         # encoded (PPM from the runtime; PNG, JPEG, WebP too); empty for control requests
    text: str = ""
    adapter_sha: str = ""      # "" = the base model
    adapter_path: str = ""     # the unpacked PEFT directory, as the server sees it
    max_new_tokens: int = 0    # 0 = the skill's default
    stream: bool = False


@dataclass(frozen=True)
class Reply:
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    final: bool = True         # False: one piece of a streamed answer
    error: Exception | None = None


Send = Callable[[int, Reply], None]


class BackendEngine:
    """One base checkpoint and its adapters, driven batch by batch (not thread-safe: Triton calls
    `execute` of one model instance from one thread)."""

    def __init__(self, base_dir: str | Path, *, memory_budget_bytes: int, device: str | None = None,
                 threads: int = 0) -> None:
        self.base_dir, self.memory_budget_bytes, self.device = base_dir, memory_budget_bytes, device
        self.threads = threads
        self.runtime = self._runtime(Skills.from_pretrained(base_dir, device))

    def _runtime(self, skills: Skills) -> TorchRuntime:
        runtime = TorchRuntime(self.base_dir, memory_budget_bytes=self.memory_budget_bytes, device=self.device,
                               threads=self.threads)
        runtime.use_loaded(skills)
        return runtime

    def handle(self, requests: Sequence[BackendRequest], send: Send,
               cancelled: Callable[[int], bool] = lambda index: False) -> None:
        groups: dict[tuple[AdapterRef | None, str, int], list[tuple[int, SkillCall]]] = {}
        streams: list[tuple[int, SkillCall]] = []
        for index, request in enumerate(requests):
            try:
                if request.skill in CONTROL_SKILLS:
                    send(index, self._control(request))
                    continue
                call = to_call(request)
            except Exception as exc:
                send(index, Reply(error=exc))
                continue
            if request.stream:
                streams.append((index, call))
            else:
                groups.setdefault((call.adapter, call.skill, max_new_tokens(call)), []).append((index, call))
        for (adapter, _, limit), members in groups.items():
            try:
                texts, ins, outs = self.runtime._generate_raw(adapter, [call for _, call in members], limit)
            except Exception as exc:
                log.warning("batch failed", exc_info=exc)
                for index, _ in members:
                    send(index, Reply(error=exc))
                continue
            for (index, _), text, n_in, n_out in zip(members, texts, ins, outs, strict=True):
                send(index, Reply(text, n_in, n_out))
        for index, call in streams:
            self._stream(index, call, send, cancelled)

    def loaded(self) -> list[tuple[str, int]]:
        return self.runtime.lru.items()

    def _control(self, request: BackendRequest) -> Reply:
        if request.skill == "load":
            if not request.adapter_sha or not request.adapter_path:
                raise ValueError("a load request names the adapter's sha256 and path")
            self.runtime._ensure_adapter(AdapterRef(request.adapter_sha, Path(request.adapter_path)))
        elif request.skill == "reset" and self.runtime._peft is not None:
            skills = self.runtime._require_skills()
            skills.model = self.runtime._peft.unload()  # the base model without any LoRA layer
            self.runtime = self._runtime(skills)
        return Reply(json.dumps(self.loaded()))

    def _stream(self, index: int, call: SkillCall, send: Send, cancelled: Callable[[int], bool]) -> None:
        trimmer = _Trimmer()

        def on_piece(text: str) -> None:
            for piece in trimmer.feed(text):
                send(index, Reply(piece, final=False))

        skills = self.runtime._require_skills()
        try:
            with self.runtime._activated(call.adapter):
                texts, ins, outs = self.runtime._generate(
                    [call.image], [prompt_for(call)], max_new_tokens(call),
                    streamer=_PieceStreamer(skills.processor.tokenizer, on_piece),
                    stop=cast(Any, _Flag(lambda: cancelled(index))))
        except Exception as exc:
            send(index, Reply(error=exc))
            return
        send(index, Reply(texts[0], ins[0], outs[0]))


def to_call(request: BackendRequest) -> SkillCall:
    """The runtime-neutral call of a request (raises ValueError for what the caller must fix)."""
    if request.skill not in SKILLS:
        raise ValueError(f"unknown skill {request.skill!r}: use one of {', '.join(SKILLS)}")
    try:
        image = Image.open(io.BytesIO(request.image))
        image.load()
    except Exception as exc:
        raise ValueError(f"the image could not be decoded: {exc}") from None
    adapter = None
    if request.adapter_sha:
        if not request.adapter_path:
            raise ValueError("an adapter needs its path")
        adapter = AdapterRef(request.adapter_sha, Path(request.adapter_path))
    return SkillCall(skill=cast(Any, request.skill), image=image, text=request.text, adapter=adapter,
                     max_new_tokens=request.max_new_tokens or None)


class _Trimmer:
    """Streamed pieces with the answer's leading and trailing whitespace removed, so that they
    concatenate to exactly the unary answer (the torch runtime's `_trimmed`, synchronously)."""

    def __init__(self) -> None:
        self.started, self.held = False, ""

    def feed(self, text: str) -> list[str]:
        if not self.started:
            text = text.lstrip()
            if not text:
                return []
            self.started = True
        body = text.rstrip()
        if not body:
            self.held += text
            return []
        piece, self.held = self.held + body, text[len(body):]
        return [piece]


class _Flag:
    """`threading.Event`-shaped view of "the client went away" for the torch runtime's stop criterion."""

    def __init__(self, check: Callable[[], bool]) -> None:
        self.check = check

    def is_set(self) -> bool:
        return self.check()
