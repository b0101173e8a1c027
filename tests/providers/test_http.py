"""What both HTTP dialects share: status errors, retries and their waits, connection drops,
timeouts, and the rule that no httpx exception leaves a provider."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

import ait
from ait.providers import AnthropicProvider, OpenAIProvider, RetryPolicy, TextDelta
from ait.providers._http import HttpProvider

from .helpers import (
    FAST_RETRY,
    Responder,
    Script,
    anthropic_sse,
    anthropic_text,
    chunk,
    collect,
    collect_until_error,
    fail,
    finish_of,
    ok,
    openai_sse,
    request,
    status,
    text_chunk,
    text_of,
)

MakeClient = Callable[[Any], httpx.AsyncClient]


@dataclass
class Dialect:
    name: str
    make: Callable[..., HttpProvider]
    #: A whole answer "Hello".
    answer: list[bytes]
    #: The start of an answer whose first piece is the text "Hel" (output has begun).
    first_token: list[bytes]
    #: The start of an answer with no output yet (a role chunk, a message_start).
    preamble: list[bytes]
    #: An error reported inside the stream.
    error_event: list[bytes]


OPENAI = Dialect(
    "openai",
    lambda client, **kw: OpenAIProvider(
        "m", base_url="http://llm.test/v1", client=client, **{"retry": FAST_RETRY, **kw}
    ),
    answer=openai_sse(text_chunk("Hel"), text_chunk("lo"), chunk(finish="stop")),
    first_token=openai_sse(text_chunk("Hel"), done=False),
    preamble=openai_sse(chunk({"role": "assistant", "content": ""}), done=False),
    error_event=[b'data: {"error": {"message": "the model is overloaded", "code": 503}}\n\n'],
)

ANTHROPIC = Dialect(
    "anthropic",
    lambda client, **kw: AnthropicProvider(
        "claude-x", api_key="k", client=client, **{"retry": FAST_RETRY, **kw}
    ),
    answer=anthropic_text("Hel", "lo"),
    first_token=anthropic_text("Hel")[:3],
    preamble=anthropic_text("Hel")[:1],
    error_event=anthropic_sse(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "the model is overloaded"},
        }
    ),
)


@pytest.fixture(params=[OPENAI, ANTHROPIC], ids=lambda d: d.name)
def dialect(request: pytest.FixtureRequest) -> Dialect:
    return request.param


def run(dialect: Dialect, mock_client: MakeClient, *responders: Responder, **options: Any):
    """A Script of `responders`, and the stream of a provider on it."""
    script = Script(*responders)
    provider = dialect.make(mock_client(script), **options)
    return script, provider.stream(request())


# -- status errors ------------------------------------------------------------------------------

STATUS_ERRORS = [
    (400, ait.BadRequestError, "bad-request", False),
    (401, ait.AuthenticationError, "authentication", False),
    (403, ait.PermissionDeniedError, "permission-denied", False),
    (404, ait.NotFoundError, "not-found", False),
    (408, ait.ProviderStatusError, "provider-status", True),
    (409, ait.ProviderStatusError, "provider-status", True),
    (422, ait.UnprocessableEntityError, "unprocessable-entity", False),
    (429, ait.RateLimitError, "rate-limited", True),
    (500, ait.ServerError, "provider-server-error", True),
    (503, ait.ServerError, "provider-server-error", True),
    (529, ait.ServerError, "provider-server-error", True),  # Anthropic's "overloaded"
]


@pytest.mark.parametrize(
    ("code", "cls", "error_code", "retried"), STATUS_ERRORS, ids=[str(s[0]) for s in STATUS_ERRORS]
)
async def test_status_errors(
    dialect: Dialect,
    mock_client: MakeClient,
    code: int,
    cls: type[ait.ProviderStatusError],
    error_code: str,
    retried: bool,
) -> None:
    body = {"error": {"type": "some_error", "message": f"nope {code}"}}
    script, stream = run(
        dialect, mock_client, status(code, body, headers={"x-request-id": f"req-{code}"})
    )
    with pytest.raises(cls) as caught:
        await collect(stream)
    error = caught.value
    assert type(error) is cls
    assert error.status_code == code
    assert error.body == body
    assert error.request_id == f"req-{code}"
    assert error.code == error_code
    assert error.provider == dialect.name
    assert f"nope {code}" in str(error) and str(code) in str(error)
    assert script.count == (3 if retried else 1)  # 2 retries by default


async def test_error_bodies_of_other_shapes(dialect: Dialect, mock_client: MakeClient) -> None:
    cases: list[tuple[Any, Any, str]] = [
        ("upstream exploded", "upstream exploded", "upstream exploded"),  # text, not JSON
        ({"error": "flat string"}, {"error": "flat string"}, "flat string"),
        ({"message": "top level"}, {"message": "top level"}, "top level"),
        (None, None, "Bad Request"),  # no body: the reason phrase
    ]
    for body, parsed, shown in cases:
        headers = {"request-id": "req_anthropic"}  # Anthropic's header name
        script, stream = run(dialect, mock_client, status(400, body, headers=headers))
        with pytest.raises(ait.BadRequestError) as caught:
            await collect(stream)
        assert caught.value.body == parsed
        assert shown in str(caught.value)
        assert caught.value.request_id == "req_anthropic"


async def test_no_retries_when_disabled(dialect: Dialect, mock_client: MakeClient) -> None:
    script, stream = run(dialect, mock_client, status(503, {}), retry=RetryPolicy(max_retries=0))
    with pytest.raises(ait.ServerError):
        await collect(stream)
    assert script.count == 1


async def test_5xx_then_success(dialect: Dialect, mock_client: MakeClient) -> None:
    script, stream = run(dialect, mock_client, status(500, {}), status(502, {}), ok(dialect.answer))
    events = await collect(stream)
    assert text_of(events) == "Hello" and script.count == 3


# -- Retry-After --------------------------------------------------------------------------------


async def waited(dialect: Dialect, mock_client: MakeClient, headers: dict[str, str]) -> float:
    """Seconds between a 429 carrying `headers` and the retry (which succeeds)."""
    script, stream = run(dialect, mock_client, status(429, {}, headers=headers), ok(dialect.answer))
    events = await collect(stream)
    assert text_of(events) == "Hello" and script.count == 2
    (gap,) = script.gaps()
    return gap


async def test_retry_after_seconds(dialect: Dialect, mock_client: MakeClient) -> None:
    gap = await waited(dialect, mock_client, {"retry-after": "0.3"})
    assert 0.29 <= gap < 0.6, gap


async def test_retry_after_ms_wins(dialect: Dialect, mock_client: MakeClient) -> None:
    gap = await waited(dialect, mock_client, {"retry-after-ms": "150", "retry-after": "30"})
    assert 0.14 <= gap < 0.45, gap


async def test_retry_after_http_date(dialect: Dialect, mock_client: MakeClient) -> None:
    # An HTTP date has whole seconds: aim at the second after next and expect that wait.
    target = math.floor(time.time()) + 2
    expected = target - time.time()
    gap = await waited(
        dialect, mock_client, {"retry-after": email.utils.formatdate(target, usegmt=True)}
    )
    assert expected - 0.1 <= gap < expected + 0.4, (gap, expected)


async def test_retry_after_in_the_past_or_unreadable(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    for value in (past, "soon", "-1", "3600"):  # "3600": over the 60 s cap, back off instead
        gap = await waited(dialect, mock_client, {"retry-after": value})
        assert gap < 0.2, (value, gap)


async def test_retry_after_on_a_503(dialect: Dialect, mock_client: MakeClient) -> None:
    script, stream = run(
        dialect, mock_client, status(503, {}, headers={"retry-after": "0.2"}), ok(dialect.answer)
    )
    await collect(stream)
    (gap,) = script.gaps()
    assert 0.19 <= gap < 0.5, gap


async def test_the_retry_after_value_is_on_the_error(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    script, stream = run(
        dialect,
        mock_client,
        status(429, {}, headers={"retry-after": "0.01"}),
        retry=RetryPolicy(max_retries=0),
    )
    with pytest.raises(ait.RateLimitError) as caught:
        await collect(stream)
    assert caught.value.retry_after == pytest.approx(0.01)


async def test_cancelling_during_a_retry_wait(dialect: Dialect, mock_client: MakeClient) -> None:
    script, stream = run(dialect, mock_client, status(429, {}, headers={"retry-after": "30"}))
    started = time.monotonic()
    with anyio.move_on_after(0.2) as scope:
        await collect(stream)
    assert scope.cancelled_caught  # a cancel stays a cancel, never a provider error
    assert time.monotonic() - started < 1 and script.count == 1


def test_default_backoff() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.initial_delay, policy.max_delay) == (2, 0.5, 8.0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)]:
        for _ in range(50):
            assert base * 0.75 <= policy.delay(attempt) <= base
    assert policy.delay(1, retry_after=3) == 3
    assert policy.delay(1, retry_after=0) == 0
    assert policy.delay(1, retry_after=61) <= 0.5  # an unreasonable ask: back off instead


# -- connection drops ---------------------------------------------------------------------------


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError])
async def test_a_failed_send_is_retried(
    dialect: Dialect, mock_client: MakeClient, error: type[httpx.HTTPError]
) -> None:
    script, stream = run(dialect, mock_client, fail(error, "connection reset"), ok(dialect.answer))
    assert text_of(await collect(stream)) == "Hello"
    assert script.count == 2


async def test_a_reset_before_the_first_chunk_is_retried(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    reset = ok([], error=httpx.ReadError("connection reset by peer"))
    script, stream = run(dialect, mock_client, reset, ok(dialect.answer))
    assert text_of(await collect(stream)) == "Hello"
    assert script.count == 2


async def test_a_reset_before_any_output_is_retried(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    # Bytes came (a role chunk, message_start) but nothing was yielded: safe to try again.
    reset = ok(dialect.preamble, error=httpx.ReadError("connection reset by peer"))
    script, stream = run(dialect, mock_client, reset, ok(dialect.answer))
    assert text_of(await collect(stream)) == "Hello"
    assert script.count == 2


async def test_a_reset_after_the_first_token_is_not_retried(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    reset = ok(dialect.first_token, error=httpx.ReadError("connection reset by peer"))
    script, stream = run(dialect, mock_client, reset, ok(dialect.answer))
    events, error = await collect_until_error(stream)
    assert events == [TextDelta(text="Hel")]
    assert isinstance(error, ait.ProviderStreamError)
    assert "after output began" in str(error) and "reset" in str(error)
    assert isinstance(error.__cause__, ait.ProviderConnectionError)
    assert script.count == 1
    assert reset.streams[0].closed


async def test_connection_errors_exhaust_the_retries(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    script, stream = run(dialect, mock_client, fail(httpx.ConnectError, "refused"))
    with pytest.raises(ait.ProviderConnectionError, match="unable to reach"):
        await collect(stream)
    assert script.count == 3


async def test_an_error_event_mid_stream(dialect: Dialect, mock_client: MakeClient) -> None:
    body = dialect.first_token + dialect.error_event + dialect.answer
    script, stream = run(dialect, mock_client, ok(body))
    events, error = await collect_until_error(stream)
    assert events == [TextDelta(text="Hel")]  # the error is raised, never yielded
    assert isinstance(error, ait.ProviderStreamError)
    assert "overloaded" in str(error)
    assert script.count == 1


async def test_an_error_event_first_is_not_retried(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    script, stream = run(dialect, mock_client, ok(dialect.error_event), ok(dialect.answer))
    events, error = await collect_until_error(stream)
    assert events == [] and isinstance(error, ait.ProviderStreamError)
    assert script.count == 1


@pytest.mark.parametrize(
    "line",
    [b"data: {not json\n\n", b"data: [1, 2]\n\n", b'data: "text"\n\n'],
    ids=["not-json", "array", "string"],
)
async def test_a_malformed_event(dialect: Dialect, mock_client: MakeClient, line: bytes) -> None:
    script, stream = run(dialect, mock_client, ok([*dialect.first_token, line]))
    events, error = await collect_until_error(stream)
    assert events == [TextDelta(text="Hel")]
    assert isinstance(error, ait.ProviderStreamError)
    assert "malformed" in str(error) or "not an object" in str(error)
    assert script.count == 1


# -- timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_timeouts(
    dialect: Dialect, mock_client: MakeClient, error: type[httpx.HTTPError]
) -> None:
    script, stream = run(dialect, mock_client, fail(error, "timed out"))
    with pytest.raises(ait.ProviderTimeout, match="did not answer in time"):
        await collect(stream)
    assert script.count == 3  # retried like a connection error


async def test_a_timeout_then_success(dialect: Dialect, mock_client: MakeClient) -> None:
    script, stream = run(dialect, mock_client, fail(httpx.ReadTimeout), ok(dialect.answer))
    assert text_of(await collect(stream)) == "Hello" and script.count == 2


async def test_a_timeout_after_the_first_token(dialect: Dialect, mock_client: MakeClient) -> None:
    stall = ok(dialect.first_token, error=httpx.ReadTimeout("stopped sending"))
    script, stream = run(dialect, mock_client, stall, ok(dialect.answer))
    events, error = await collect_until_error(stream)
    assert events == [TextDelta(text="Hel")]
    assert isinstance(error, ait.ProviderStreamError)
    assert isinstance(error.__cause__, ait.ProviderTimeout)
    assert script.count == 1


async def test_a_real_read_timeout_on_loopback(dialect: Dialect) -> None:
    """No mock: a server that accepts and never answers; the provider's own client times out."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        held: list[anyio.abc.SocketStream] = []

        async def accept(stream: anyio.abc.SocketStream) -> None:
            async with stream:  # closed when the test cancels the server
                held.append(stream)
                await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, accept)
            retry = RetryPolicy(max_retries=1, initial_delay=0.01)
            provider: HttpProvider
            if dialect.name == "openai":
                provider = OpenAIProvider(
                    "m", base_url=f"http://127.0.0.1:{port}/v1", timeout=0.2, retry=retry
                )
            else:
                provider = AnthropicProvider(
                    "c",
                    api_key="k",
                    base_url=f"http://127.0.0.1:{port}/v1",
                    timeout=0.2,
                    retry=retry,
                )
            started = time.monotonic()
            try:
                with pytest.raises(ait.ProviderTimeout):
                    await collect(provider.stream(request()))
            finally:
                await provider.aclose()
            elapsed = time.monotonic() - started
            assert 0.4 <= elapsed < 2, elapsed  # two attempts of 0.2 s
            assert len(held) == 2
            tg.cancel_scope.cancel()


async def test_connection_refused_on_loopback(dialect: Dialect) -> None:
    with socket_port() as port:
        pass  # closed again: nothing listens there now
    retry = RetryPolicy(max_retries=0)
    provider: HttpProvider
    if dialect.name == "openai":
        provider = OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}/v1", retry=retry)
    else:
        provider = AnthropicProvider(
            "c", api_key="k", base_url=f"http://127.0.0.1:{port}/v1", retry=retry
        )
    try:
        with pytest.raises(ait.ProviderConnectionError, match=f"127.0.0.1:{port}"):
            await collect(provider.stream(request()))
    finally:
        await provider.aclose()


def socket_port() -> Any:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    class Closing:
        def __enter__(self) -> int:
            return port

        def __exit__(self, *exc: object) -> None:
            sock.close()

    return Closing()


# -- no httpx exception escapes -----------------------------------------------------------------

HTTPX_ERRORS = [
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.CloseError,
    httpx.RemoteProtocolError,
    httpx.LocalProtocolError,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.DecodingError,
    httpx.TooManyRedirects,
]


@pytest.mark.parametrize("error", HTTPX_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("where", ["send", "before-output", "after-output"])
async def test_no_httpx_exception_escapes(
    dialect: Dialect, mock_client: MakeClient, error: type[httpx.HTTPError], where: str
) -> None:
    if where == "send":
        responder = fail(error, "boom")
    else:
        body = dialect.preamble if where == "before-output" else dialect.first_token
        responder = ok(body, error=error("boom", request=httpx.Request("POST", "http://x")))
    script, stream = run(dialect, mock_client, responder)
    events, raised = await collect_until_error(stream)
    assert raised is not None
    assert isinstance(raised, ait.ProviderError), repr(raised)
    assert not isinstance(raised, httpx.HTTPError)
    if where == "after-output":
        assert isinstance(raised, ait.ProviderStreamError) and script.count == 1
    assert [e for e in events if e.type == "finish"] == []


async def test_a_success_ends_with_one_finish(dialect: Dialect, mock_client: MakeClient) -> None:
    script, stream = run(dialect, mock_client, ok(dialect.answer))
    events = await collect(stream)
    finish_of(events)
    assert script.count == 1


async def test_a_body_that_cannot_be_encoded_is_a_request_error(
    dialect: Dialect, mock_client: MakeClient
) -> None:
    # A lone surrogate (from a surrogateescape'd file name, say) has no UTF-8 form.
    script = Script(ok(dialect.answer))
    provider = dialect.make(mock_client(script))
    with pytest.raises(ait.ProviderRequestError, match="unable to encode"):
        provider.stream(request("bad \ud800 text"))
    assert script.count == 0  # refused before any call
