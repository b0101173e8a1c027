"""Spec strings and the provider registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ait
from ait.providers import (
    AnthropicProvider,
    LlamaCppProvider,
    OpenAIProvider,
    ProviderRegistry,
    from_spec,
    smollm2_path,
)


def test_llama_cpp_smollm2_with_options() -> None:
    provider = from_spec("llama-cpp:smollm2?n_threads=1&n_ctx=1024")
    assert isinstance(provider, LlamaCppProvider)
    assert provider.model_path == smollm2_path()
    assert provider.options["n_threads"] == 1 and provider.options["n_ctx"] == 1024
    assert provider.options["n_gpu_layers"] == 0
    assert not provider.loaded  # a spec never loads the model


def test_llama_cpp_path_with_every_option_kind(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    provider = from_spec(
        f"llama:{model}?n_gpu_layers=-1&main_gpu=0&split_mode=2&n_batch=64"
        "&flash_attn=true&verbose=0&chat_format=chatml&model=local"
    )
    assert isinstance(provider, LlamaCppProvider)
    assert provider.model_path == model and provider.model == "local"
    assert provider.options["n_gpu_layers"] == -1
    assert provider.options["split_mode"] == 2 and provider.options["n_batch"] == 64
    assert provider.options["flash_attn"] is True and provider.options["verbose"] is False
    assert provider.options["chat_format"] == "chatml"


def test_llama_cpp_overrides_win(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    provider = from_spec(f"llama-cpp:{model}?n_ctx=512", n_ctx=2048, model="x")
    assert isinstance(provider, LlamaCppProvider)
    assert provider.options["n_ctx"] == 2048 and provider.model == "x"


def test_openai_with_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    provider = from_spec("openai:gpt-x")
    assert isinstance(provider, OpenAIProvider)
    assert (provider.model, provider.base_url, provider.api_key) == (
        "gpt-x",
        "https://api.openai.com/v1",
        "sk-env",
    )


@pytest.mark.parametrize(
    ("spec", "base_url", "model"),
    [
        ("openai+http://localhost:8080/v1:local-model", "http://localhost:8080/v1", "local-model"),
        ("openai+https://gpu.test/v1:Qwen/Qwen3-8B", "https://gpu.test/v1", "Qwen/Qwen3-8B"),
        ("openai+http://127.0.0.1:8000/v1:m:q4", "http://127.0.0.1:8000/v1:m", "q4"),
    ],
)
def test_openai_compatible_server(spec: str, base_url: str, model: str) -> None:
    provider = from_spec(spec)
    assert isinstance(provider, OpenAIProvider)
    assert (provider.base_url, provider.model, provider.api_key) == (base_url, model, None)


def test_anthropic(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = from_spec("anthropic:claude-x", api_key="sk-ant")
    assert isinstance(provider, AnthropicProvider)
    assert (provider.model, provider.api_key) == ("claude-x", "sk-ant")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    provider = from_spec("anthropic:claude-y")
    assert isinstance(provider, AnthropicProvider) and provider.api_key == "sk-ant-env"


BAD_SPECS: dict[str, tuple[str, str]] = {
    "unknown kind": ("mistral:large", "unknown kind 'mistral'"),
    "missing colon": ("gpt-4o-mini", "expected kind:model"),
    "empty model": ("openai:", "expected kind:model"),
    "empty": ("", "expected kind:model"),
    "unknown option": ("llama-cpp:smollm2?n_thread=1", "unknown option 'n_thread'"),
    "bad int": ("llama-cpp:smollm2?n_ctx=big", "n_ctx='big' is not valid"),
    "empty int": ("llama-cpp:smollm2?n_gpu_layers=", "n_gpu_layers='' is not valid"),
    "bad bool": ("llama-cpp:smollm2?flash_attn=maybe", "flash_attn='maybe' is not valid"),
    "missing file": ("llama-cpp:/no/such/model.gguf", "no model file at /no/such/model.gguf"),
    "missing openai key": ("openai:gpt-x", "OPENAI_API_KEY"),
    "missing anthropic key": ("anthropic:claude-x", "ANTHROPIC_API_KEY"),
    "compatible without url": ("openai+:m", "expected openai+<base url>:<model>"),
    "compatible with an empty model": (
        "openai+http://localhost:8080/v1:",
        "expected openai+<base url>:<model>",
    ),
    "compatible without model": (
        "openai+http://localhost:8080/v1",
        "expected openai+<base url>:<model>",
    ),
    "compatible without model or port": ("openai+http://localhost", "expected openai+"),
    "compatible with a bad url": ("openai+ftp://host/v1:m", "invalid base URL"),
}


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ait.ProviderConfigError) as caught:
        from_spec(spec)
    assert message in str(caught.value)
    assert caught.value.code == "provider-config"


def test_a_spec_error_shows_the_spec() -> None:
    with pytest.raises(ait.ProviderConfigError, match=r"bad model spec 'llama-cpp:smollm2\?x=1'"):
        from_spec("llama-cpp:smollm2?x=1")


# -- the registry -------------------------------------------------------------------------------


class Named:
    """The smallest provider: a model name, a stream, aclose."""

    def __init__(self, model: str | None) -> None:
        self.name = "named"
        self.model = model
        self.closed = False

    def stream(self, request: Any) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        self.closed = True


def test_registry_routes_by_model() -> None:
    registry = ProviderRegistry()
    first, second = Named("alpha"), Named("beta")
    registry.add(first)
    registry.add(second)
    registry.add(second, model="beta-alias")
    assert registry.default == "alpha"  # the first one added
    assert registry.get() is first and registry.get(None) is first
    assert registry.get("beta") is second and registry.get("beta-alias") is second
    assert registry.models == ["alpha", "beta", "beta-alias"]


def test_registry_explicit_default() -> None:
    registry = ProviderRegistry(default="beta")
    registry.add(Named("alpha"))
    beta = Named("beta")
    registry.add(beta)
    assert registry.get() is beta


def test_registry_unknown_model() -> None:
    registry = ProviderRegistry()
    with pytest.raises(
        ait.ProviderConfigError, match=r"no provider for model None \(registered: none\)"
    ):
        registry.get()
    registry.add(Named("alpha"))
    with pytest.raises(ait.ProviderConfigError, match=r"'gamma' \(registered: alpha\)"):
        registry.get("gamma")
    registry = ProviderRegistry(default="missing")
    registry.add(Named("alpha"))
    with pytest.raises(ait.ProviderConfigError, match="'missing'"):
        registry.get()


def test_registry_needs_a_model_name() -> None:
    with pytest.raises(ait.ProviderConfigError, match="model id"):
        ProviderRegistry().add(Named(None))


async def test_registry_closes_every_provider() -> None:
    registry = ProviderRegistry()
    providers = [Named("a"), Named("b")]
    for provider in providers:
        registry.add(provider)
    await registry.aclose()
    assert all(p.closed for p in providers)


def test_registry_with_real_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    registry = ProviderRegistry()
    registry.add(from_spec("llama-cpp:smollm2?n_threads=1", model="local"))
    registry.add(from_spec("openai:gpt-x"))
    assert registry.models == ["gpt-x", "local"]
    assert isinstance(registry.get("local"), LlamaCppProvider)
    assert isinstance(registry.get("gpt-x"), ait.providers.Provider)
