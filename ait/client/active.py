"""ActiveRun: a client's handle on the run its input started.

```python
active = await client.view.send("hi")
active.input_event_id, active.message_id       # known at once
run_id = await active.run_id                   # when the agent's run.start arrives
async for text in active.text_stream(): ...    # the answer as it streams
info = await active.wait()                     # the run as it ended (or suspended)
await active.cancel()                          # works before the run id is known too
```
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..conversation import RunInfo
from ..errors import AnswerRefused, UsageError
from ..events import Cancel, Input, Invocation
from ..ids import new_id

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = ["ActiveRun", "RunOutput"]


@dataclass(frozen=True, slots=True)
class RunOutput:
    """One codec event of a run's output, and the message it belongs to."""

    message_id: str
    event: dict[str, Any]


class _RunId:
    """The run id, awaitable: resolves on the run's start or resume."""

    def __init__(self, active: ActiveRun) -> None:
        self._active = active

    def __await__(self) -> Generator[Any, None, str]:
        return self._active.wait_run_id().__await__()


class ActiveRun:
    """The run answering one input of this client. Returned by a view's writes."""

    def __init__(self, session: ClientSession, event: Input) -> None:
        self.session = session
        self.input = event
        #: Ids known at once: the input event's, and the input message's.
        self.input_event_id = event.event_id
        self.message_id = event.message_id
        self._run_id: str | None = event.run_id if event.run_id is not None else None
        self._started = anyio.Event()
        self._done = anyio.Event()
        self._closed = False
        self._outputs: deque[RunOutput] = deque()
        self._output_count = 0
        self._wake = anyio.Event()
        self._final: RunInfo | None = None
        self._refusal: AnswerRefused | None = None
        #: An answer (a continuation) whose input the session has seen on the channel.
        self.echoed = False

    def __repr__(self) -> str:
        return f"ActiveRun(input={self.input_event_id}, run={self._run_id or '?'})"

    # -- identity -----------------------------------------------------------------------------

    @property
    def run_id(self) -> _RunId:
        """`await active.run_id`: the run id, once the agent started (or resumed) the run.

        Raises (when awaited):
            UsageError: the session closed before the run started.
            AnswerRefused: this input answers a run (a tool result, an approval) that was
                resumed without it (another answer to the same call came first), or ended.
                An answer to a run that awaits more answers waits for them instead.
        """
        return _RunId(self)

    @property
    def known_run_id(self) -> str | None:
        """The run id if already known (a continuation knows it from the start)."""
        return self._run_id

    async def wait_run_id(self) -> str:
        await self._started.wait()
        if self._refusal is not None:
            raise self._refusal
        if self._run_id is None or (self._closed and not self._started_by_run):
            raise UsageError("the session closed before the run started")
        return self._run_id

    def to_invocation(self) -> Invocation:
        """The invocation to post to an HTTP doorbell (the rest is on the channel)."""
        return Invocation(channel=self.session.channel.name, input_event_id=self.input_event_id)

    # -- control ------------------------------------------------------------------------------

    async def invoke(self, pool: str | None = None) -> None:
        """Wake an agent for this input again (after a failed doorbell or enqueue: a write
        that raised with `error.active_run` set published its input already). Safe even if
        an earlier ring did reach an agent: an input is answered once.

        Raises:
            TimeoutError: the doorbell did not answer within the session's `invoke_timeout`;
            and whatever the doorbell raised.
        """
        await self.session.wake_agent(self, pool)

    async def cancel(self) -> None:
        """Ask the agent to stop this run; by input message id until the run id is known."""
        session = self.session
        if self._run_id is not None:
            cancel = Cancel(event_id=new_id(), client_id=session.client_id, run_id=self._run_id)
        else:
            cancel = Cancel(
                event_id=new_id(), client_id=session.client_id, input_message_id=self.message_id
            )
        await session.publish(cancel)

    async def wait(self) -> RunInfo:
        """The run once it ended or suspended.

        Raises:
            UsageError: the session closed first.
            AnswerRefused: see `run_id`.
        """
        await self._done.wait()
        if self._refusal is not None:
            raise self._refusal
        if self._final is None:
            raise UsageError("the session closed before the run ended")
        return self._final

    @property
    def done(self) -> bool:
        return self._done.is_set() and self._final is not None

    # -- output -------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[RunOutput]:
        """Every codec event of this run's output, from its start, as it arrives; ends with
        the run (or when the session closes)."""
        index = 0
        while True:
            while index < self._output_count:
                yield self._outputs[index]
                index += 1
            if self._done.is_set() or self._closed:
                return
            wake = self._wake
            await wake.wait()

    async def text_stream(self) -> AsyncIterator[str]:
        """The run's text as it streams (every text delta, in order)."""
        async for output in self.events():
            if output.event.get("type") == "text-delta":
                yield output.event["delta"]

    # -- the session's side -------------------------------------------------------------------

    _started_by_run = False

    def started(self, run_id: str) -> None:
        self._run_id = run_id
        self._started_by_run = True
        self._started.set()

    def output(self, message_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._outputs.append(RunOutput(message_id, event))
        self._output_count = len(self._outputs)
        self._wake.set()
        self._wake = anyio.Event()

    def finished(self, info: RunInfo) -> None:
        self._final = info
        self._done.set()
        self._wake.set()

    def refused(self, error: AnswerRefused) -> None:
        self._refusal = error
        self._started.set()
        self._done.set()
        self._wake.set()

    def session_closed(self) -> None:
        self._closed = True
        self._started.set()
        self._done.set()
        self._wake.set()
