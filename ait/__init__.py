"""ait: realtime, durable, branchable AI sessions over Redis Streams.

Layout (each layer imports only from the layers below it; import-linter checks this):

    ait/cli.py, ait/testing/     the `ait` command; helpers for tests (embedded and in-memory Redis)
    ait/web/                     the ASGI bridge for browsers (extra `web`; never imports agent)
    ait/agent/                   AgentSession, Run, AgentWorker
    ait/client/                  ClientSession, ClientView, ActiveRun
    ait/providers/               llama.cpp, OpenAI-compatible, Anthropic; one Provider protocol
    ait/conversation/            Tree and View: the pure fold of a channel
    ait/bus/                     Bus, Channel, Subscription, CoalescingWriter, EmbeddedRedis
    ait/codec/                   the entry envelope (v, t, h, d) and payload codecs
    ait/events.py                the transport event types
    ait/errors.py, ait/ids.py    the error tree; ids and entry-id helpers

The public surface is re-exported here; everything else is reachable through its module.
"""

from __future__ import annotations

from . import providers as providers
from .agent import AgentSession as AgentSession
from .agent import AgentWorker as AgentWorker
from .agent import CancelRequest as CancelRequest
from .agent import PipeResult as PipeResult
from .agent import Run as Run
from .agent import RunHistory as RunHistory
from .agent import ToolCall as ToolCall
from .bus import Bus as Bus
from .bus import Channel as Channel
from .bus import CoalescingWriter as CoalescingWriter
from .bus import EmbeddedRedis as EmbeddedRedis
from .bus import Entry as Entry
from .bus import Pool as Pool
from .bus import Retention as Retention
from .bus import Subscription as Subscription
from .client import ActiveRun as ActiveRun
from .client import ClientSession as ClientSession
from .client import ClientView as ClientView
from .codec.chat import ChatCodec as ChatCodec
from .conversation import FoldError as FoldError
from .conversation import Message as Message
from .conversation import RunInfo as RunInfo
from .conversation import Tree as Tree
from .conversation import View as View
from .conversation import ViewChange as ViewChange
from .errors import AitError as AitError
from .errors import AnswerRefused as AnswerRefused
from .errors import AuthenticationError as AuthenticationError
from .errors import AwaitingAnswers as AwaitingAnswers
from .errors import BadRequestError as BadRequestError
from .errors import BusConnectionError as BusConnectionError
from .errors import BusError as BusError
from .errors import BusTimeoutError as BusTimeoutError
from .errors import CodecError as CodecError
from .errors import ContinuityLost as ContinuityLost
from .errors import EmbeddedRedisError as EmbeddedRedisError
from .errors import EntryTooLarge as EntryTooLarge
from .errors import InputNotFound as InputNotFound
from .errors import InvalidName as InvalidName
from .errors import InvokeFailed as InvokeFailed
from .errors import NotFoundError as NotFoundError
from .errors import PermissionDeniedError as PermissionDeniedError
from .errors import ProviderConfigError as ProviderConfigError
from .errors import ProviderConnectionError as ProviderConnectionError
from .errors import ProviderError as ProviderError
from .errors import ProviderRequestError as ProviderRequestError
from .errors import ProviderStatusError as ProviderStatusError
from .errors import ProviderStreamError as ProviderStreamError
from .errors import ProviderTimeout as ProviderTimeout
from .errors import RateLimitError as RateLimitError
from .errors import RedisUnavailable as RedisUnavailable
from .errors import RunCancelled as RunCancelled
from .errors import RunConflict as RunConflict
from .errors import RunError as RunError
from .errors import RunLost as RunLost
from .errors import RunRejected as RunRejected
from .errors import ServerError as ServerError
from .errors import SubscriberLagged as SubscriberLagged
from .errors import UnprocessableEntityError as UnprocessableEntityError
from .errors import UsageError as UsageError
from .errors import WriteFailed as WriteFailed
from .events import BadEntry as BadEntry
from .events import Cancel as Cancel
from .events import Event as Event
from .events import Input as Input
from .events import Invocation as Invocation
from .events import Output as Output
from .events import RunEnd as RunEnd
from .events import RunResume as RunResume
from .events import RunStart as RunStart
from .events import RunSuspend as RunSuspend

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "AgentSession",
    "AgentWorker",
    "AitError",
    "AnswerRefused",
    "AuthenticationError",
    "AwaitingAnswers",
    "BadEntry",
    "BadRequestError",
    "Bus",
    "BusConnectionError",
    "BusError",
    "BusTimeoutError",
    "Cancel",
    "CancelRequest",
    "Channel",
    "ChatCodec",
    "ClientSession",
    "ClientView",
    "CoalescingWriter",
    "CodecError",
    "ContinuityLost",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "Entry",
    "EntryTooLarge",
    "Event",
    "FoldError",
    "Input",
    "InputNotFound",
    "InvalidName",
    "Invocation",
    "InvokeFailed",
    "Message",
    "NotFoundError",
    "Output",
    "PermissionDeniedError",
    "PipeResult",
    "Pool",
    "ProviderConfigError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderStatusError",
    "ProviderStreamError",
    "ProviderTimeout",
    "RateLimitError",
    "RedisUnavailable",
    "Retention",
    "Run",
    "RunCancelled",
    "RunConflict",
    "RunEnd",
    "RunError",
    "RunHistory",
    "RunInfo",
    "RunLost",
    "RunRejected",
    "RunResume",
    "RunStart",
    "RunSuspend",
    "ServerError",
    "SubscriberLagged",
    "Subscription",
    "ToolCall",
    "Tree",
    "UnprocessableEntityError",
    "UsageError",
    "View",
    "ViewChange",
    "WriteFailed",
]
