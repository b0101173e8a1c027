"""Every error `ait` raises, in one tree.

```
AitError
├── UsageError (also RuntimeError)        the program called the API wrongly
│   └── InvalidName (also ValueError)     a channel or pool name outside the allowed set
├── CodecError (also ValueError)          an entry or payload that does not decode or encode
├── BusError                              talking to Redis failed
│   ├── BusConnectionError                Redis unreachable, or the connection dropped
│   ├── BusTimeoutError                   Redis did not answer in time
│   ├── EntryTooLarge (also ValueError)   an entry over the size limit; nothing was written
│   ├── WriteFailed                       a coalescing writer's batch was not written
│   │   └── RedisUnavailable              Redis stayed away longer than the writer would wait
│   ├── SubscriberLagged                  a subscriber fell too far behind and was detached
│   ├── ContinuityLost                    the stream was reset or trimmed past a reader's cursor
│   └── EmbeddedRedisError                the embedded redis-server could not start
├── RunError                              a run could not do what was asked
│   ├── InputNotFound                     an invocation's input never showed up on the channel
│   ├── RunRejected                       the input asked `reject` and another run was active
│   ├── RunConflict                       the input is answered already, or its run is not suspended
│   │   ├── AwaitingAnswers               the run waits for answers to more of its calls
│   │   └── RunCancelled                  the run was cancelled while suspended: ended, not resumed
│   ├── AnswerRefused                     a client's answer was not the one its run took
│   ├── RunLost                           another process ended the run as lost (`agent-lost`)
│   └── InvokeFailed                      an input was published but no agent could be woken
└── ProviderError                         a model provider failed (`code` names the failure)
    ├── ProviderConfigError               a bad URL, spec, missing key or model file
    ├── ProviderRequestError (also ValueError)  an invalid request, refused before any call
    ├── ProviderConnectionError           the provider could not be reached
    ├── ProviderTimeout                   the provider did not answer in time
    ├── ProviderStatusError               an HTTP error status (`status_code`, `body`, `request_id`)
    │   ├── BadRequestError               400
    │   ├── AuthenticationError           401
    │   ├── PermissionDeniedError         403
    │   ├── NotFoundError                 404
    │   ├── UnprocessableEntityError      422
    │   ├── RateLimitError                429
    │   └── ServerError                   5xx
    └── ProviderStreamError               the stream broke after it began (an error event, a drop)
```

Foreign exceptions (redis-py's, OSError) are translated at the edge of the layer that
meets them; none escapes the public API.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AitError",
    "AnswerRefused",
    "AuthenticationError",
    "AwaitingAnswers",
    "BadRequestError",
    "BusConnectionError",
    "BusError",
    "BusTimeoutError",
    "CodecError",
    "ContinuityLost",
    "EmbeddedRedisError",
    "EntryTooLarge",
    "InputNotFound",
    "InvalidName",
    "InvokeFailed",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderConfigError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderStatusError",
    "ProviderStreamError",
    "ProviderTimeout",
    "RateLimitError",
    "RedisUnavailable",
    "RunCancelled",
    "RunConflict",
    "RunError",
    "RunLost",
    "RunRejected",
    "ServerError",
    "SubscriberLagged",
    "UnprocessableEntityError",
    "UsageError",
    "WriteFailed",
]


class AitError(Exception):
    """Root of every error raised by `ait`."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors with keyword-only or several constructor arguments still pickle (they may
        # cross a process boundary): rebuild without __init__, then restore the attributes.
        return (_rebuild, (type(self), self.args, self.__dict__))


class UsageError(AitError, RuntimeError):
    """The API was used wrongly: wrong order of calls, a closed object, a bad argument."""


class InvalidName(UsageError, ValueError):
    """A channel or pool name is empty, too long, or has characters outside `A-Za-z0-9._-:`."""

    def __init__(self, kind: str, name: object, reason: str) -> None:
        self.kind = kind
        self.name = name
        self.reason = reason
        super().__init__(f"invalid {kind} name {name!r}: {reason}")


class CodecError(AitError, ValueError):
    """An entry or payload could not be decoded or encoded.

    Attributes:
        entry_id: the stream entry id when decoding an entry read from Redis, else None.
        reason: what is wrong, in words.
    """

    def __init__(self, reason: str, *, entry_id: str | None = None) -> None:
        self.reason = reason
        self.entry_id = entry_id
        where = f"entry {entry_id}: " if entry_id else ""
        super().__init__(f"{where}{reason}")


class BusError(AitError):
    """Talking to Redis failed."""


class BusConnectionError(BusError):
    """Redis could not be reached, or the connection dropped during a command."""


class BusTimeoutError(BusError):
    """Redis did not answer within the configured timeout."""


class EntryTooLarge(BusError, ValueError):
    """An entry is over the bus's size limit. Nothing was written."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"entry of {size} bytes is over the limit of {limit} bytes; nothing was written "
            "(split the payload, or raise max_entry_bytes on the Bus)"
        )


class WriteFailed(BusError):
    """A coalescing writer could not write a batch.

    The events that were not written are in `unsent`, in order, so the caller can decide
    what to do with them; `cause` is the error met. The writer is usable again after
    raising this.
    """

    def __init__(self, cause: BaseException, unsent: list[Any]) -> None:
        self.cause = cause
        self.unsent = unsent
        super().__init__(f"{len(unsent)} event(s) not written: {cause}")


class RedisUnavailable(WriteFailed):
    """A coalescing writer that resends through outages gave up: Redis stayed unreachable
    (or did not answer) for longer than its bound.

    `unsent` holds what was not written; some of it may have landed before the connection
    dropped (readers fold such an entry once: it carries a resend key). `waited` is how
    long the writer tried, `bound` its limit, both in seconds. A run that ends over it is
    published with the code `redis-unavailable`.
    """

    code = "redis-unavailable"

    def __init__(
        self, cause: BaseException, unsent: list[Any], *, waited: float, bound: float
    ) -> None:
        self.cause = cause
        self.unsent = unsent
        self.waited = waited
        self.bound = bound
        BusError.__init__(
            self,
            f"Redis was unreachable for {waited:.1f} s (the bound is {bound:g} s); "
            f"{len(unsent)} event(s) not written: {cause}",
        )


class SubscriberLagged(BusError):
    """A subscriber fell too far behind the shared reader and was detached.

    Nothing is lost: iterate the same subscription again and it catches up from the last
    entry it yielded, then rejoins the shared reader.
    """

    def __init__(self, channel: str, last_id: str) -> None:
        self.channel = channel
        self.last_id = last_id
        super().__init__(
            f"subscriber of channel {channel!r} fell behind and was detached at {last_id}; "
            "iterate again to catch up from there"
        )


class ContinuityLost(BusError):
    """The stream no longer holds the entry a reader had reached.

    Redis restarted without persistence (the stream vanished or began again), or retention
    trimmed entries the reader had not yet read. The reader cannot tell what it missed.
    Iterating the subscription again follows the stream from its oldest entry.
    """

    def __init__(self, channel: str, last_id: str, reason: str) -> None:
        self.channel = channel
        self.last_id = last_id
        self.reason = reason
        super().__init__(f"channel {channel!r} lost continuity after {last_id}: {reason}")


class EmbeddedRedisError(BusError):
    """The embedded redis-server could not be found or started."""


class RunError(AitError):
    """A run could not do what was asked."""


class InputNotFound(RunError):
    """The input an invocation names did not show up on the channel in time.

    Nothing was published. An HTTP doorbell should answer with an error status so the
    client's send fails visibly.
    """

    def __init__(self, channel: str, input_event_id: str, timeout: float) -> None:
        self.channel = channel
        self.input_event_id = input_event_id
        self.timeout = timeout
        super().__init__(
            f"input event {input_event_id!r} was not found on channel {channel!r}: not in its "
            f"recent history, and it did not arrive within {timeout:g} s; nothing was "
            "published (was it published to this channel? trimmed by retention?)"
        )


class RunRejected(RunError):
    """The input's multitask policy was `reject` and another run was active.

    The run was started and ended at once with the error code `rejected`, so the client
    sees why; the handler should simply return.
    """

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class RunConflict(RunError):
    """The invocation's input is answered already: a fresh input another agent's run
    (`run_id`) answers, or a continuation (a tool result, an approval) naming a run that is
    not suspended: it is active (another agent resumed it first), it ended, or the channel
    has no record of it.

    Nothing was published; the handler should simply return. `taken` is true when the run
    answers this very input already (the fresh input of a duplicate invocation, or an
    answer among several a resume took): nothing is wrong, and a worker does not report it.
    """

    def __init__(
        self, run_id: str, state: str | None, *, taken: bool = False, message: str | None = None
    ) -> None:
        self.run_id = run_id
        self.state = state
        self.taken = taken
        where = f"is {state}" if state else "is not in the channel's recent history"
        also = "; it took this answer already" if taken else ""
        super().__init__(
            message or f"unable to resume run {run_id!r}: it {where}, not suspended{also}"
        )


class AwaitingAnswers(RunConflict):
    """An answer to a suspended run that waits for several tool calls, while some of them
    (`missing`, their ids) have no answer yet.

    The answer is on the channel and counts: the invocation that brings the last missing
    answer resumes the run with all of them. Nothing was published; the handler should
    simply return (a worker does so without reporting it).
    """

    def __init__(self, run_id: str, missing: set[str] | tuple[str, ...]) -> None:
        self.missing = tuple(sorted(missing))
        super().__init__(
            run_id,
            "suspended",
            message=f"run {run_id!r} stays suspended: tool calls {list(self.missing)} "
            "have no answer yet",
        )


class RunCancelled(RunConflict):
    """An answer to a suspended run that a cancel asked to stop while it was suspended (and
    the `on_cancel` hook allowed it): instead of resuming the run, `run.start()` ended it
    with `cancelled` (`state` is `ended`). The answer was not taken: its client's
    `ActiveRun` raises `AnswerRefused`. The handler should simply return (a worker does so
    without reporting it).
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(
            run_id,
            "ended",
            message=f"run {run_id!r} was cancelled while suspended: it was ended `cancelled` "
            "instead of being resumed",
        )


class AnswerRefused(RunError):
    """A client's answer (a tool result, an approval) that its run did not take: another
    answer resumed the run first, or the run ended. Raised by the answer's `ActiveRun`
    (`run_id`, `wait()`); nothing more will come of it.
    """

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id!r} did not take this answer: it was {reason} first")


class RunLost(RunError):
    """Another process ended this agent's run as lost: it published the run's `run.end`
    (error, code `agent-lost`) because the run's heartbeats stopped reaching Redis for
    longer than the bound (three heartbeats and a grace). The agent was alive but too slow.

    `Run.pipe` returns it as its `error` (reason `error`); every client already shows the
    run ended, so the handler should simply return: `end()` does nothing now.
    """

    code = "agent-lost"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id!r} was ended as lost by another process: its heartbeats stopped "
            "reaching Redis for too long (a frozen event loop? Redis unreachable?); "
            "stop working on it"
        )


class InvokeFailed(RunError):
    """An input was published, but waking an agent for it failed (the pool enqueue or your
    doorbell raised, or did not answer within the session's `invoke_timeout`: then
    `__cause__` is a `TimeoutError`; `__cause__` says why).

    `active_run` is the live handle of that input: retry with `await error.active_run.invoke()`.
    """

    def __init__(self, cause: BaseException, active_run: Any) -> None:
        self.active_run = active_run
        super().__init__(f"the input was published, but no agent could be woken: {cause!r}")


class ProviderError(AitError):
    """A model provider failed. `code` is a stable kebab-case name for the failure (it goes
    on the wire as the run's error code); `provider` names the provider."""

    code = "provider-error"

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        self.provider = provider
        super().__init__(message)


class ProviderConfigError(ProviderError):
    """A provider cannot be set up: a bad URL or spec, a missing API key or model file."""

    code = "provider-config"


class ProviderRequestError(ProviderError, ValueError):
    """The request is invalid (checked before any network or model call)."""

    code = "invalid-request"


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (retried first, when nothing was streamed yet)."""

    code = "provider-unreachable"


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    code = "provider-timeout"


class ProviderStatusError(ProviderError):
    """The provider answered with an HTTP error status.

    Attributes:
        status_code: the HTTP status.
        body: the response body (parsed JSON when it was JSON, else text).
        request_id: the provider's request id header, for support tickets.
    """

    code = "provider-status"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        request_id: str | None = None,
        provider: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        #: Seconds the provider asked to wait before retrying (`Retry-After`), if it did.
        self.retry_after: float | None = None
        super().__init__(message, provider=provider)


class BadRequestError(ProviderStatusError):
    code = "bad-request"


class AuthenticationError(ProviderStatusError):
    code = "authentication"


class PermissionDeniedError(ProviderStatusError):
    code = "permission-denied"


class NotFoundError(ProviderStatusError):
    code = "not-found"


class UnprocessableEntityError(ProviderStatusError):
    code = "unprocessable-entity"


class RateLimitError(ProviderStatusError):
    code = "rate-limited"


class ServerError(ProviderStatusError):
    code = "provider-server-error"


class ProviderStreamError(ProviderError):
    """The stream broke after it began: an error event in it, a malformed chunk, or the
    connection dropping once output had been produced (never retried then)."""

    code = "provider-stream"


def _rebuild(cls: type[AitError], args: tuple[Any, ...], state: dict[str, Any]) -> AitError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
