"""What HTTP providers share: one retry and timeout policy, and the translation of errors.

Retries (the Stainless SDKs' policy): 2 by default, 0.5 s doubling to 8 s with jitter,
`Retry-After` honoured, on connection errors, timeouts, 408, 409, 429 and 5xx, and never
once the stream has produced output: from then on a failure is a `ProviderStreamError`.
No httpx exception leaves this module.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import anyio
import httpx

from ..errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderStatusError,
    ProviderStreamError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from ._json import as_dict
from .base import Stopwatch
from .events import ProviderEvent
from .request import ChatRequest

__all__ = ["HttpProvider", "RetryPolicy"]

_STATUS_ERRORS: dict[int, type[ProviderStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before trying a request again."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None and 0 <= retry_after <= 60:
            return retry_after
        base = min(self.initial_delay * 2 ** (attempt - 1), self.max_delay)
        return base * (1 - self.jitter * random.random())

    @staticmethod
    def retryable(error: ProviderError) -> bool:
        if isinstance(error, ProviderConnectionError | ProviderTimeout):
            return True
        if isinstance(error, ProviderStatusError):
            status = error.status_code
            return status in (408, 409, 429) or status >= 500
        return False


class HttpProvider:
    """A provider reached over HTTP with a streamed (SSE) answer. Subclasses give the
    dialect: `_request` (the HTTP request of a ChatRequest) and `_events` (the stream's
    provider events)."""

    name = "http"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ProviderConfigError(
                f"invalid base URL {base_url!r}: {exc}", provider=self.name
            ) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ProviderConfigError(
                f"invalid base URL {base_url!r}: expected http:// or https:// with a host",
                provider=self.name,
            )
        self.base_url = str(url).rstrip("/")
        self.model = model
        self.retry = retry or RetryPolicy()
        self.headers = dict(headers or {})
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the answer to `request` (see `Provider`)."""
        try:
            http_request = self._request(request)  # builds (and checks) before any call
        except ProviderError:
            raise
        except (TypeError, ValueError) as exc:  # a body httpx cannot encode (lone surrogates)
            raise ProviderRequestError(
                f"unable to encode the request for {self.name}: {exc}", provider=self.name
            ) from None
        return self._stream(http_request)

    def _request(self, request: ChatRequest) -> httpx.Request:
        raise NotImplementedError

    def _events(
        self, lines: AsyncIterator[bytes], watch: Stopwatch
    ) -> AsyncIterator[ProviderEvent]:
        raise NotImplementedError

    async def _stream(self, http_request: httpx.Request) -> AsyncIterator[ProviderEvent]:
        attempt = 0
        while True:
            watch = Stopwatch()
            produced = False
            try:
                response = await self._send(http_request)
                try:
                    async for event in self._events(self._bytes(response), watch):
                        produced = True
                        yield event
                finally:
                    await response.aclose()
                return
            except ProviderStreamError:
                raise
            except ProviderError as exc:
                if produced:
                    raise ProviderStreamError(
                        f"{self.name} stream broke after output began: {exc}", provider=self.name
                    ) from exc
                if attempt >= self.retry.max_retries or not self.retry.retryable(exc):
                    raise
                attempt += 1
                await anyio.sleep(self.retry.delay(attempt, _retry_after(exc)))

    async def _send(self, http_request: httpx.Request) -> httpx.Response:
        try:
            response = await self._client.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self.name} did not answer in time: {exc!r}", provider=self.name
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ProviderConfigError(f"{self.name}: {exc}", provider=self.name) from None
        except httpx.HTTPError as exc:
            raise ProviderConnectionError(
                f"unable to reach {self.name} at {http_request.url}: {exc!r}", provider=self.name
            ) from None
        if response.status_code >= 400:
            try:
                raw = await response.aread()
            except httpx.HTTPError:
                raw = b""
            finally:
                await response.aclose()
            raise self._status_error(response, raw)
        return response

    def _status_error(self, response: httpx.Response, raw: bytes) -> ProviderStatusError:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        message = _error_message(body) or response.reason_phrase or "error"
        status = response.status_code
        cls = _STATUS_ERRORS.get(status, ServerError if status >= 500 else ProviderStatusError)
        error = cls(
            f"{self.name} answered {status}: {message}",
            status_code=status,
            body=body,
            request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
            provider=self.name,
        )
        error.retry_after = _parse_retry_after(response.headers)
        return error

    async def _bytes(self, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self.name} stopped sending: {exc!r}", provider=self.name
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderConnectionError(
                f"connection to {self.name} broke: {exc!r}", provider=self.name
            ) from None


def _error_message(body: Any) -> str | None:
    if isinstance(body, dict):
        error = as_dict(cast(object, body)).get("error")
        if isinstance(error, str):
            return error
        message = as_dict(error).get("message") or as_dict(cast(object, body)).get("message")
        return str(message) if message else None
    if isinstance(body, str):
        return body[:500] or None
    return None


def _parse_retry_after(headers: httpx.Headers) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def _retry_after(error: ProviderError) -> float | None:
    return error.retry_after if isinstance(error, ProviderStatusError) else None
