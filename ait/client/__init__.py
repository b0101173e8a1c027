"""The client side: sessions on channels, views that write, and handles on active runs."""

from __future__ import annotations

from .active import ActiveRun as ActiveRun
from .active import RunOutput as RunOutput
from .session import ClientSession as ClientSession
from .session import Invoke as Invoke
from .session import SessionError as SessionError
from .view import ClientView as ClientView
from .view import Content as Content

__all__ = [
    "ActiveRun",
    "ClientSession",
    "ClientView",
    "Content",
    "Invoke",
    "RunOutput",
    "SessionError",
]
