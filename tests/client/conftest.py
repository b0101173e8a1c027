"""Fixtures of the client tests (defined in helpers.py, shared by every module here)."""

from __future__ import annotations

from .helpers import agent as agent
from .helpers import connect as connect
from .helpers import pool_name as pool_name
