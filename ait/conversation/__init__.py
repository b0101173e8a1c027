"""The conversation fold: a branchable Tree of every message, and Views onto it. Pure: no I/O.

Imports only the events and codecs below it; the client session and the agent both fold a
channel with it, so they agree on what the conversation is.
"""

from __future__ import annotations

from .message import DataPart as DataPart
from .message import Message as Message
from .message import MessageError as MessageError
from .message import Part as Part
from .message import ReasoningPart as ReasoningPart
from .message import TextPart as TextPart
from .message import ToolCallPart as ToolCallPart
from .runs import RunInfo as RunInfo
from .runs import RunStatus as RunStatus
from .tree import FoldError as FoldError
from .tree import Tree as Tree
from .view import View as View
from .view import ViewChange as ViewChange
from .view import ViewChanges as ViewChanges

__all__ = [
    "DataPart",
    "FoldError",
    "Message",
    "MessageError",
    "Part",
    "ReasoningPart",
    "RunInfo",
    "RunStatus",
    "TextPart",
    "ToolCallPart",
    "Tree",
    "View",
    "ViewChange",
    "ViewChanges",
]
