"""LlamaCppProvider: a GGUF model in this process with llama.cpp, on CPU or offloaded to GPUs.

```python
provider = LlamaCppProvider("/models/qwen2.5-7b-instruct-q4_k_m.gguf", n_gpu_layers=-1)
result = await run.pipe(provider.stream(request))
```

- The model loads once (`await provider.load()`, or on the first request), in a thread.
- Generation runs in a thread of its own; the event loop never waits on the model. Tokens
  cross to the loop one by one as they come.
- One model instance serves one generation at a time. Requests wait in a fair (FIFO)
  queue; `waiting` tells how many, and each generation's metrics report its queue wait.
- Closing the stream (a user's cancel, or the consuming task cancelled) stops generation
  within one token; prompt processing is interrupted too, through llama.cpp's abort
  callback, and the model stays usable.
- Tool calls work when the chat format supports them (`chat_format="chatml-function-calling"`
  or a model template with tools); `enable_thinking` is ignored (a template decides).

Needs the `llama` extra: `pip install 'ait[llama]'` (see docs/guides/gpu-offload.md to build
llama-cpp-python with CUDA).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from ..errors import ProviderConfigError, ProviderError, ProviderRequestError, ProviderStreamError
from ._json import as_dict, as_list
from .base import Stopwatch
from .events import Finish, ProviderEvent, ToolCallEnd, ToolCallStart, Usage
from .openai import openai_message, parse_arguments, stream_deltas
from .request import ChatRequest

__all__ = ["LlamaCppProvider"]

_Item = tuple[str, Any]  # ("chunk", chunk) | ("error", exc) | ("end", token counts)


class LlamaCppProvider:
    """A local GGUF model. See the module docstring.

    Args:
        model_path: the .gguf file.
        n_gpu_layers: layers to offload to the GPU: 0 none (CPU), -1 all.
        main_gpu: the GPU for the model (or for scratch with split_mode `layer`).
        split_mode: across GPUs: 0 none, 1 layer (default of llama.cpp), 2 row.
        n_ctx: context length in tokens.
        n_threads: CPU threads for generation (llama.cpp's default when None).
        n_threads_batch: CPU threads for prompt processing (n_threads when None).
        n_batch: prompt processing batch size.
        flash_attn: use flash attention (GPU builds).
        chat_format: a llama-cpp-python chat format; None uses the model's own template.
        model: the name this provider answers to (for a registry).
        verbose: let llama.cpp print its logs.
    """

    name = "llama-cpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_gpu_layers: int = 0,
        main_gpu: int = 0,
        split_mode: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_batch: int = 512,
        flash_attn: bool = False,
        chat_format: str | None = None,
        model: str | None = None,
        verbose: bool = False,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ProviderConfigError(f"no model file at {path}", provider=self.name)
        self.model_path = path
        self.model = model or path.stem
        self.options: dict[str, Any] = {
            "n_gpu_layers": n_gpu_layers,
            "main_gpu": main_gpu,
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            # Prompt processing uses every core unless told: follow n_threads when given.
            "n_threads_batch": n_threads_batch if n_threads_batch is not None else n_threads,
            "n_batch": n_batch,
            "flash_attn": flash_attn,
            "chat_format": chat_format,
            "verbose": verbose,
        }
        if split_mode is not None:
            self.options["split_mode"] = split_mode
        self._llm: Any = None
        self._load_lock = anyio.Lock()
        self._queue = anyio.Semaphore(1)  # FIFO: a fair queue of generations
        self._stop = threading.Event()  # read by the abort callback during prompt processing
        self._abort_callback: Any = None
        #: Generations waiting for the model now.
        self.waiting = 0

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    async def load(self) -> None:
        """Load the model (once; later calls return at once)."""
        async with self._load_lock:
            if self._llm is None:
                self._llm = await anyio.to_thread.run_sync(self._load)

    def _load(self) -> Any:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ProviderConfigError(
                "llama.cpp is not installed: pip install 'ait[llama]'", provider=self.name
            ) from exc
        options = {k: v for k, v in self.options.items() if v is not None}
        try:
            llm: Any = llama_cpp.Llama(model_path=str(self.model_path), **options)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderConfigError(
                f"unable to load {self.model_path}: {exc}", provider=self.name
            ) from exc
        if not self.options["verbose"]:
            _silence(llama_cpp)
        # Lets a cancel interrupt prompt processing, not only generation (checked by ggml
        # between graph nodes; a decode it aborts raises, and the model stays usable).
        callback_type: Any = llama_cpp.ggml_abort_callback
        self._abort_callback = callback_type(lambda _data: self._stop.is_set())  # pyright: ignore
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_callback, ctypes.c_void_p())  # pyright: ignore
        return llm

    async def aclose(self) -> None:
        """Free the model. Idempotent."""
        async with self._queue:
            llm, self._llm = self._llm, None
            if llm is not None:
                await anyio.to_thread.run_sync(llm.close)

    def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the answer to `request` (see `Provider`)."""
        return self._generate(self._kwargs(request))

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": [openai_message(m) for m in request.messages],
            "stream": True,
            "max_tokens": request.max_tokens,
            "stop": request.stop or None,
            "seed": request.seed,
        }
        optional = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "repeat_penalty": request.repetition_penalty,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if request.tools:
            kwargs["tools"] = [
                {"type": "function", "function": t.model_dump(exclude_none=True)}
                for t in request.tools
            ]
            choice = request.tool_choice
            if choice is not None and choice not in ("auto", "none", "required"):
                kwargs["tool_choice"] = {"type": "function", "function": {"name": choice}}
            elif choice is not None:
                kwargs["tool_choice"] = choice
        if request.response_format is not None:
            fmt: dict[str, Any] = {"type": "json_object"}
            if request.response_format.schema_:
                fmt["schema"] = request.response_format.schema_
            kwargs["response_format"] = fmt
        return kwargs

    async def _generate(self, kwargs: dict[str, Any]) -> AsyncIterator[ProviderEvent]:
        await self.load()
        watch = Stopwatch()  # after loading: the queue wait is the wait for other generations
        self.waiting += 1
        try:
            await self._queue.acquire()
        finally:
            self.waiting -= 1
        try:
            watch.start()
            self._stop.clear()
            send, receive = anyio.create_memory_object_stream[_Item](math.inf)
            done = anyio.Event()
            token = anyio.lowlevel.current_token()
            thread = threading.Thread(
                target=self._run, args=(kwargs, send, done, token), name="ait llama", daemon=True
            )
            thread.start()
            calls: dict[int, dict[str, Any]] = {}
            finish_reason: str | None = None
            counts: tuple[int, int] = (0, 0)
            try:
                async with receive:
                    async for kind, payload in receive:
                        if kind == "end":
                            counts = payload
                            break
                        if kind == "error":
                            raise _translate(payload, self.name)
                        choices = as_list(as_dict(payload).get("choices"))
                        choice = as_dict(choices[0] if choices else None)
                        for event in stream_deltas(as_dict(choice.get("delta")), calls):
                            watch.token()
                            yield event
                        finish_reason = choice.get("finish_reason") or finish_reason
            finally:
                self._stop.set()  # the thread stops within one token
                with anyio.CancelScope(shield=True):
                    await done.wait()
                send.close()  # the thread is done with it
            for call in calls.values():
                if not call["started"]:
                    yield ToolCallStart(id=call["id"], name=call["name"] or "unknown")
                yield ToolCallEnd(
                    id=call["id"], name=call["name"], arguments=parse_arguments(call["args"])
                )
            prompt, completion = counts
            yield Finish(
                reason=finish_reason,
                usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
                metrics=watch.metrics(prompt, completion),
            )
        finally:
            self._queue.release()

    def _run(
        self,
        kwargs: dict[str, Any],
        send: MemoryObjectSendStream[_Item],
        done: anyio.Event,
        token: Any,
    ) -> None:
        def hand_over(item: _Item) -> None:
            try:
                anyio.from_thread.run_sync(send.send_nowait, item, token=token)
            except Exception:  # the consumer went away (closed stream, stopped loop)
                self._stop.set()

        completion = 0
        try:
            llm = self._llm
            before = 0
            for chunk in llm.create_chat_completion(**kwargs):
                if self._stop.is_set():
                    break
                choices = as_list(as_dict(chunk).get("choices"))
                delta = as_dict(as_dict(choices[0] if choices else None).get("delta"))
                if delta.get("content") or delta.get("tool_calls"):  # a token of text or call
                    completion += 1
                hand_over(("chunk", chunk))
            total = int(getattr(llm, "n_tokens", 0))
            hand_over(("end", (max(total - completion - before, 0), completion)))
        except Exception as exc:
            hand_over(("end", (0, completion)) if self._stop.is_set() else ("error", exc))
        finally:
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except Exception:
                pass


_silencer: Any = None


def _silence(llama_cpp: Any) -> None:
    """Drop llama.cpp's own log lines (they would interleave with the application's output)."""
    global _silencer
    if _silencer is None:

        def drop(level: int, text: bytes, data: object) -> None:
            return None

        _silencer = llama_cpp.llama_log_callback(drop)
        llama_cpp.llama_log_set(_silencer, ctypes.c_void_p())


def _translate(error: BaseException, provider: str) -> ProviderError:
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, ValueError) and "context window" in str(error):
        return ProviderRequestError(f"the prompt does not fit: {error}", provider=provider)
    return ProviderStreamError(
        f"llama.cpp failed: {type(error).__name__}: {error}", provider=provider
    )
