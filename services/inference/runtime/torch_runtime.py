"""The in-process torch runtime: one base checkpoint, many LoRA adapters on it.

- **Model**: loaded with `dreamforge.model.skills.Skills` (the default model or any local
  SmolVLM/Idefics3 directory) on first use, in a worker thread.
- **Adapters**: the first one wraps the model with PEFT (`PeftModel.from_pretrained`), the
  others are added with `load_adapter`, all named by artifact sha256; a call selects its
  adapter with `set_adapter`, a base-only call runs inside `disable_adapter()`. Resident
  adapters are kept under `memory_budget_bytes` (their parameter bytes, measured on load)
  by LRU eviction with `delete_adapter`; an evicted adapter is reloaded from its directory
  when next used.
- **Concurrency**: generation runs in worker threads (`asyncio.to_thread`) so the event
  loop keeps serving; one asyncio lock per base model serialises generations and adapter
  changes (the PEFT active-adapter state is global to the model). Concurrent calls with the
  same adapter + skill are micro-batched into one `generate` (see batcher.py).
- **Streaming**: a `TextStreamer` subclass pushes decoded pieces from the generating thread
  into the event loop; closing the stream early stops generation at the next token.
- **Usage**: input tokens = the prompt's attention mask (image tokens included), output
  tokens = generated tokens before the end of utterance.
- **Tracing**: every generation is a `model.generate` span on the generating thread, a child of
  the (first) request's span and linked to the others of its batch, with the batch size, threads
  and the milliseconds spent on processor inputs, `generate` and decoding as attributes: with the
  request's spans around it, it tells waiting for the model apart from the model's own work.

Generation reuses `Skills._inputs` / `Skills._gen_kwargs` / `NUM_BEAMS` so prompts, padding
and decoding (beams for whole answers, greedy streams) are exactly the ones the model package
evaluates; `Skills.generate` itself does not return the token ids that usage needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from opentelemetry import context as otel_context
from opentelemetry import trace
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from dreamforge.model.skills import NUM_BEAMS, Skills
from dreamforge.tracing import tracer
from services.inference.runtime.base import (
    AdapterLoadError,
    AdapterRef,
    LoadedAdapter,
    SkillCall,
    SkillOutput,
    TextStream,
    serving_threads,
)
from services.inference.runtime.batcher import MicroBatcher
from services.inference.runtime.lru import AdapterLRU
from services.inference.runtime.prompts import max_new_tokens, prompt_for, to_output

log = logging.getLogger("dreamforge.inference.torch")
_tracer = tracer("dreamforge.inference.torch")

BatchKey = tuple[AdapterRef | None, str, int]
#: A queued call with the trace context it was made in (the batch's span is its child or links to it).
Queued = tuple[SkillCall, otel_context.Context]


class TorchRuntime:
    name = "torch"

    def __init__(self, base_dir: str | Path, *, memory_budget_bytes: int, max_batch_size: int = 8,
                 batch_window_s: float = 0.005, device: str | None = None, threads: int = 0) -> None:
        self.base_dir = Path(base_dir)
        self.device = device
        self.threads = threads  # torch intra-op threads; 0: chosen per batch (serving_threads)
        self.lru = AdapterLRU(memory_budget_bytes)
        self.batcher: MicroBatcher[BatchKey, Queued, SkillOutput] = MicroBatcher(
            self._execute, max_batch=max_batch_size, window_s=batch_window_s)
        self._skills: Skills | None = None
        self._parameters = 0  # the base model's, for serving_threads
        self._peft: Any = None  # peft.PeftModel once the first adapter is loaded
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()

    # -- ModelRuntime -----------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._skills is None:
                self.use_loaded(await asyncio.to_thread(Skills.from_pretrained, self.base_dir, self.device))
                log.info("base model loaded", extra={"base": str(self.base_dir)})

    async def run(self, call: SkillCall) -> SkillOutput:
        await self.start()
        return await self.batcher.submit((call.adapter, call.skill, max_new_tokens(call)),
                                         (call, otel_context.get_current()))

    def run_here(self, calls: Sequence[SkillCall]) -> list[SkillOutput]:
        """Answer `calls` (one skill, adapter and token limit) as one batch on the calling thread: no
        batcher, no event loop, no worker thread. The bare model call that benchmarks set beside the
        service's, with the same prompts, decoding, threads and `model.generate` span as `run`."""
        if self._skills is None:
            self.use_loaded(Skills.from_pretrained(self.base_dir, self.device))
        first = calls[0]
        return self._generate_batch(first.adapter, list(calls), max_new_tokens(first))

    def stream(self, call: SkillCall) -> TextStream:
        stream: TextStream

        def finish(output: SkillOutput) -> None:
            stream.output = output

        stream = TextStream(self._stream_pieces(call, finish))
        return stream

    async def load_adapter(self, adapter: AdapterRef) -> None:
        await self.start()
        async with self._lock:
            await asyncio.to_thread(self._ensure_adapter, adapter)

    async def loaded_adapters(self) -> list[LoadedAdapter]:
        return [LoadedAdapter(sha, size) for sha, size in self.lru.items()]

    async def close(self) -> None:
        await self.batcher.close()
        async with self._lock:
            self._skills = self._peft = None

    # -- batches ------------------------------------------------------------------------
    async def _execute(self, key: BatchKey, queued: list[Queued]) -> list[SkillOutput]:
        calls = [call for call, _ in queued]
        links = [trace.Link(span) for _, ctx in queued[1:]
                 if (span := trace.get_current_span(ctx).get_span_context()).is_valid]
        async with self._lock:
            # The worker thread starts from the first call's context, not the batcher task's.
            return await asyncio.to_thread(_in_context, queued[0][1],
                                           self._generate_batch, key[0], calls, key[2], links)

    def _generate_batch(self, adapter: AdapterRef | None, calls: list[SkillCall], limit: int,
                        links: Sequence[trace.Link] = ()) -> list[SkillOutput]:
        texts, ins, outs = self._generate_raw(adapter, calls, limit, links)
        return [to_output(c, t, i, o) for c, t, i, o in zip(calls, texts, ins, outs, strict=True)]

    def _generate_raw(self, adapter: AdapterRef | None, calls: list[SkillCall], limit: int,
                      links: Sequence[trace.Link] = ()) -> tuple[list[str], list[int], list[int]]:
        """The model's own texts (detect / point in location tokens) with token counts; the Triton backend
        sends these, so its client parses exactly what the torch runtime parses."""
        with self._activated(adapter):
            return self._generate([c.image for c in calls], [prompt_for(c) for c in calls], limit,
                                  num_beams=NUM_BEAMS.get(calls[0].skill, 1), links=links)  # a batch is one skill

    @torch.inference_mode()
    def _generate(self, images: Sequence[Image.Image], prompts: Sequence[str], limit: int,
                  streamer: TextStreamer | None = None, stop: threading.Event | None = None,
                  num_beams: int = 1, links: Sequence[trace.Link] = ()) -> tuple[list[str], list[int], list[int]]:
        skills = self._require_skills()
        threads = serving_threads(self.threads, len(images), self._parameters)
        torch.set_num_threads(threads)  # this thread's OpenMP team
        with _tracer.start_as_current_span("model.generate", links=links) as span:
            started = time.perf_counter()
            batch = skills._inputs(images, prompts)
            kwargs: dict[str, Any] = skills._gen_kwargs(limit, num_beams)
            if streamer is not None:
                kwargs["streamer"] = streamer
            if stop is not None:
                kwargs["stopping_criteria"] = StoppingCriteriaList([_StopWhen(stop)])
            prepared = time.perf_counter()
            out = skills.model.generate(**batch, **kwargs)
            new = out[:, batch["input_ids"].shape[1]:].tolist()  # waits for the device
            generated = time.perf_counter()
            texts = [t.strip() for t in skills.processor.batch_decode(new, skip_special_tokens=True)]
            input_tokens = [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]
            output_tokens = [_generated_count(row, skills.eos_ids) for row in new]
            if span.is_recording():
                span.set_attributes({
                    "model.batch_size": len(images), "model.threads": threads, "model.beams": num_beams,
                    "model.output_tokens": max(output_tokens, default=0),
                    "model.inputs_ms": (prepared - started) * 1000, "model.generate_ms": (generated - prepared) * 1000,
                    "model.decode_ms": (time.perf_counter() - generated) * 1000})
        return texts, input_tokens, output_tokens

    # -- adapters -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _activated(self, adapter: AdapterRef | None) -> Iterator[None]:
        """The model with `adapter` active (or with every adapter disabled for base calls)."""
        if adapter is not None:
            self._ensure_adapter(adapter)
            self._peft.set_adapter(adapter.sha256)
            yield
        elif self._peft is not None:
            with self._peft.disable_adapter():
                yield
        else:
            yield

    def _ensure_adapter(self, adapter: AdapterRef) -> None:
        """Make `adapter` resident (worker thread, under the lock), evicting LRU ones beyond the budget."""
        sha = adapter.sha256
        if sha in self.lru:
            self.lru.touch(sha)
            return
        skills = self._require_skills()
        try:
            if self._peft is None:
                from peft import PeftModel

                self._peft = PeftModel.from_pretrained(skills.model, str(adapter.path), adapter_name=sha)
                self._peft.eval()
                skills.model = self._peft
            else:
                self._peft.load_adapter(str(adapter.path), adapter_name=sha)
        except Exception as exc:
            if self._peft is not None and sha in self._peft.peft_config and len(self._peft.peft_config) > 1:
                with contextlib.suppress(Exception):
                    self._peft.delete_adapter(sha)
            raise AdapterLoadError(f"adapter {sha[:12]} cannot be loaded on base {self.base_dir.name}: {exc}") from exc
        size = sum(p.numel() * p.element_size() for n, p in self._peft.named_parameters() if f".{sha}." in n)
        victims = self.lru.add(sha, size)
        for victim in victims:
            self._peft.delete_adapter(victim)
        if self.lru.total_bytes > self.lru.budget_bytes:
            log.warning("adapter exceeds the memory budget on its own", extra={"adapter": sha, "bytes": size})
        log.info("adapter loaded", extra={"adapter": sha, "bytes": size, "evicted": victims})

    def use_loaded(self, skills: Skills) -> None:
        """Serve `skills`, already loaded (the Triton backend loads its checkpoint itself)."""
        self._skills, self._parameters = skills, sum(p.numel() for p in skills.model.parameters())

    def _require_skills(self) -> Skills:
        if self._skills is None:
            raise RuntimeError("the torch runtime is closed or not started")
        return self._skills

    # -- streaming --------------------------------------------------------------------------
    async def _stream_pieces(self, call: SkillCall, finish: Callable[[SkillOutput], None]) -> AsyncIterator[str]:
        await self.start()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        abandoned = threading.Event()

        def emit(kind: str, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def work() -> None:
            try:
                streamer = _PieceStreamer(self._require_skills().processor.tokenizer, lambda t: emit("piece", t))
                with self._activated(call.adapter):
                    texts, ins, outs = self._generate([call.image], [prompt_for(call)], max_new_tokens(call),
                                                      streamer=streamer, stop=abandoned)
                emit("done", to_output(call, texts[0], ins[0], outs[0]))
            except BaseException as exc:  # surfaced to the consumer
                emit("error", exc)

        await self._lock.acquire()
        try:
            worker = asyncio.ensure_future(asyncio.to_thread(work))
        except BaseException:
            self._lock.release()
            raise
        # The lock is held until the thread ends, even if the consumer leaves early.
        worker.add_done_callback(lambda _: self._lock.release())
        try:
            async for piece in _trimmed(queue, finish):
                yield piece
        finally:
            abandoned.set()


async def _trimmed(queue: asyncio.Queue[tuple[str, Any]], finish: Callable[[SkillOutput], None],
                   ) -> AsyncIterator[str]:
    """Pieces with leading and trailing whitespace of the whole answer removed (so that they
    concatenate to exactly the unary answer), then `finish(output)`."""
    started, held = False, ""
    while True:
        kind, value = await queue.get()
        if kind == "error":
            raise value
        if kind == "done":
            finish(value)
            return
        text = str(value)
        if not started:
            text = text.lstrip()
            if not text:
                continue
            started = True
        body = text.rstrip()
        if body:
            yield held + body
            held = text[len(body):]
        else:
            held += text


class _PieceStreamer(TextStreamer):
    """TextStreamer that hands each finalised piece to a callback instead of printing it."""

    def __init__(self, tokenizer: Any, on_piece: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._on_piece = on_piece

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._on_piece(text)


class _StopWhen(StoppingCriteria):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)  # type: ignore[return-value]


def _in_context(ctx: otel_context.Context, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` with `ctx` as the current trace context (on a worker thread)."""
    token = otel_context.attach(ctx)
    try:
        return fn(*args)
    finally:
        otel_context.detach(token)


def _generated_count(row: list[int], eos_ids: Sequence[int]) -> int:
    """Tokens generated before the first end-of-utterance (the rest is padding)."""
    for i, token in enumerate(row):
        if token in eos_ids:
            return i
    return len(row)
