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
- A prompt longer than the context (`n_ctx`) is refused with `ProviderRequestError` before
  anything is generated, saying both numbers; an answer that reaches the end of the context
  stops there with finish reason `length`.
- Tool calls work when the chat format supports them (`chat_format="chatml-function-calling"`
  or a model template with tools); `enable_thinking` is ignored (a template decides).

Needs the `llama` extra: `pip install 'ait[llama]'` (see docs/guides/gpu-offload.md to build
llama-cpp-python with CUDA).
"""

from __future__ import annotations

import ctypes
import math
import os
import re
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
        #: Tokens the loaded context holds, prompt and answer together.
        self._window = 0
        #: The formatter of the model's own chat template, to count a prompt's tokens.
        self._formatter: Any = None
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
            import llama_cpp.llama_chat_format
        except ImportError as exc:
            raise ProviderConfigError(
                "llama.cpp is not installed: pip install 'ait[llama]'", provider=self.name
            ) from exc
        _quiet_null_files()
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
        self._window = _window(llm)
        self._formatter = _template_formatter(llm, llama_cpp.llama_chat_format)
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
                            produced = watch.first is not None  # an event was yielded
                            raise _translate(payload, self.name, self._window, produced)
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
            prompt = self._prompt_tokens(llm, kwargs)
            if prompt is not None and prompt >= self._window:
                # llama-cpp-python's own rule: the prompt must leave room for one token; a
                # longer max_tokens is cut to what is left (the answer ends with `length`).
                raise ProviderRequestError(_too_long(prompt, self._window), provider=self.name)
            for chunk in llm.create_chat_completion(**kwargs):
                if self._stop.is_set():
                    break
                choices = as_list(as_dict(chunk).get("choices"))
                delta = as_dict(as_dict(choices[0] if choices else None).get("delta"))
                if delta.get("content") or delta.get("tool_calls"):  # a token of text or call
                    completion += 1
                hand_over(("chunk", chunk))
            if prompt is None:  # from the context: one short when max_tokens cut the answer
                prompt = max(int(getattr(llm, "n_tokens", 0)) - completion - before, 0)
            hand_over(("end", (prompt, completion)))
        except Exception as exc:
            hand_over(("end", (0, completion)) if self._stop.is_set() else ("error", exc))
        finally:
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except Exception:
                pass

    def _prompt_tokens(self, llm: Any, kwargs: dict[str, Any]) -> int | None:
        """The tokens of the prompt `kwargs` makes, as llama-cpp-python will tokenize it;
        None when the chat format is not the model's template (llama-cpp-python checks it
        then, later). In the generation thread: rendering and tokenizing take a while."""
        if self._formatter is None:
            return None
        result = self._formatter(
            messages=kwargs["messages"],
            tools=kwargs.get("tools"),
            tool_choice=kwargs.get("tool_choice"),
        )
        tokens = llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        return len(tokens)


_silencer: Any = None


class _NullWriter:
    """Stands where llama-cpp-python wants an open /dev/null: a raw descriptor, never closed
    (it lives as long as the process), so no ResourceWarning at exit."""

    def __init__(self) -> None:
        self._fd = os.open(os.devnull, os.O_WRONLY)

    encoding = "utf-8"

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def _quiet_null_files() -> None:
    """llama-cpp-python opens two /dev/null files at import and never closes them; each
    prints a ResourceWarning when the interpreter exits under `-W error` or `-X dev`. Swap them
    for writers over raw descriptors (it looks them up at each use) and close the files."""
    import llama_cpp._utils as utils

    for name in ("outnull_file", "errnull_file"):
        current = getattr(utils, name, None)
        if current is None or isinstance(current, _NullWriter):
            continue
        setattr(utils, name, _NullWriter())
        current.close()


def _silence(llama_cpp: Any) -> None:
    """Drop llama.cpp's own log lines (they would interleave with the application's output)."""
    global _silencer
    if _silencer is None:

        def drop(level: int, text: bytes, data: object) -> None:
            return None

        _silencer = llama_cpp.llama_log_callback(drop)
        llama_cpp.llama_log_set(_silencer, ctypes.c_void_p())


def _translate(error: BaseException, provider: str, window: int, produced: bool) -> ProviderError:
    """llama.cpp's failure as a ProviderError.

    The prompt is counted before generating (`_prompt_tokens`); these are the fallbacks for
    what that count cannot see (a chat format other than the model's template).
    """
    if isinstance(error, ProviderError):
        return error
    text = str(error)
    if isinstance(error, ValueError) and "context window" in text:
        # llama-cpp-python's "Requested tokens (N) exceed context window of M": its M is
        # llama.cpp's padded size, not the n_ctx that holds (`_window`).
        found = _REQUESTED.search(text)
        if found is not None:
            return ProviderRequestError(_too_long(int(found[1]), window), provider=provider)
        return ProviderRequestError(
            f"the prompt does not fit the context window of {window} tokens (n_ctx): {text}; "
            "raise n_ctx or shorten the conversation",
            provider=provider,
        )
    if isinstance(error, ValueError) and "could not broadcast" in text:
        # llama-cpp-python's token buffers (n_ctx long) overflowed: the conversation
        # outgrew the context.
        if not produced:
            return ProviderRequestError(
                f"the prompt does not fit the context window of {window} tokens (n_ctx); "
                f"raise n_ctx or shorten the conversation (llama.cpp: {text})",
                provider=provider,
            )
        return ProviderStreamError(
            f"the answer ran past the end of the context window of {window} tokens (n_ctx); "
            f"raise n_ctx or shorten the conversation (llama.cpp: {text})",
            provider=provider,
        )
    return ProviderStreamError(
        f"llama.cpp failed: {type(error).__name__}: {error}", provider=provider
    )


_REQUESTED = re.compile(r"Requested tokens \((\d+)\)")


def _too_long(prompt: int, window: int) -> str:
    return (
        f"the prompt does not fit: it is {prompt} tokens, and the context window holds "
        f"{window} (n_ctx), prompt and answer together; raise n_ctx or shorten the conversation"
    )


def _window(llm: Any) -> int:
    """The tokens `llm`'s context holds.

    llama.cpp pads the context it allocates (to a multiple of 256: n_ctx=1000 gets 1024),
    but llama-cpp-python's token buffers hold only the n_ctx it was given, while it checks
    prompts and caps max_tokens against the padded size (0.3.36). A conversation between the
    two overflowed its buffers ("could not broadcast input array"). Align its bound with its
    buffers, so that its own check and cap (which `_prompt_tokens` cannot replace for every
    chat format) hold.
    """
    padded = int(llm.n_ctx())
    asked = int(llm.context_params.n_ctx)
    window = min(asked, padded) if asked > 0 else padded
    if getattr(llm, "_n_ctx", window) > window:
        llm._n_ctx = window
    return window


def _template_formatter(llm: Any, chat_format: Any) -> Any:
    """The formatter llama-cpp-python renders `llm`'s prompts with, when they follow one of
    the model's own chat templates (the default for a model that has one); else None.

    Built as `llama_cpp.Llama` builds it, so a prompt counts the tokens it will evaluate.
    """
    name = llm.chat_format
    if llm.chat_handler is not None or not isinstance(name, str):
        return None
    if name == "chat_template.default":
        template = llm.metadata.get("tokenizer.chat_template")
    elif name.startswith("chat_template."):
        template = llm.metadata.get(f"tokenizer.{name}")
    else:
        return None  # a named format (`chatml`, `chatml-function-calling`, ...)
    if not template:
        return None

    def text(token: int) -> str:
        return llm._model.token_get_text(token) if token != -1 else ""

    eos = int(llm.token_eos())
    return chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=text(eos),
        bos_token=text(int(llm.token_bos())),
        stop_token_ids=[eos],
    )
