"""The public surface: every `__all__` is sorted, complete and resolvable; the error tree."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
from types import ModuleType

import pytest

import ait
import ait.agent
import ait.client
import ait.codec.chat
import ait.conversation
import ait.errors

MODULES = [
    "ait",
    "ait.agent",
    "ait.providers",
    "ait.client",
    "ait.bus",
    "ait.codec",
    "ait.codec.chat",
    "ait.codec.envelope",
    "ait.conversation",
    "ait.errors",
    "ait.events",
    "ait.ids",
    "ait.testing",
]


def public_names(module: ModuleType) -> set[str]:
    """Names a module defines at top level, or re-exports with `import x as x`.

    Plain imports (`from typing import Any`) are the module's own business; `__future__`
    imports, dunders and `_private` names are not API.
    """
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(a.asname for a in node.names if a.asname and a.asname == a.name)
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.asname and a.asname == a.name)
    # Subpackages made reachable as attributes (`from . import providers as providers`) are
    # namespaces, not members.
    return {
        name
        for name in names
        if not name.startswith("_") and not isinstance(getattr(module, name, None), ModuleType)
    }


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then the rest; each by name."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted(name: str) -> None:
    exported = importlib.import_module(name).__all__
    assert exported == sorted(exported, key=isort_key)


@pytest.mark.parametrize("name", MODULES)
def test_all_has_no_duplicates(name: str) -> None:
    exported = importlib.import_module(name).__all__
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == public_names(module)


@pytest.mark.parametrize("name", MODULES)
def test_all_resolves(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert getattr(module, member, None) is not None, member
        assert not isinstance(getattr(module, member), ModuleType), member


def test_the_top_level_reexports_the_same_objects() -> None:
    for member in ait.__all__:
        homes = [
            m
            for m in (
                ait.agent,
                ait.bus,
                ait.client,
                ait.codec.chat,
                ait.conversation,
                ait.errors,
                ait.events,
            )
            if member in m.__all__
        ]
        assert len(homes) == 1, member
        assert getattr(ait, member) is getattr(homes[0], member), member


def test_every_error_is_exported_at_the_top() -> None:
    assert set(ait.errors.__all__) <= set(ait.__all__)


def test_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", ait.__version__)
    assert "__version__" not in ait.__all__


# -- the error tree -----------------------------------------------------------------------

_TREE_LINE = re.compile(
    r"^(?P<indent>(?:│   |    )*)(?P<branch>[├└]── )?(?P<name>\w+)(?P<rest>.*)$"
)


def documented_tree() -> dict[str, tuple[str | None, str | None]]:
    """Each error of the docstring tree: (documented parent, builtin of `(also X)`)."""
    doc = ait.errors.__doc__
    assert doc is not None
    block = doc.split("```")[1].strip("\n")
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[str] = []
    for line in block.splitlines():
        match = _TREE_LINE.match(line)
        assert match, f"unparsable line in the error tree: {line!r}"
        depth = len(match["indent"]) // 4 + (1 if match["branch"] else 0)
        name = match["name"]
        del stack[depth:]
        also = re.match(r"\s*\(also (\w+)\)", match["rest"])
        tree[name] = (stack[-1] if stack else None, also[1] if also else None)
        stack.append(name)
    return tree


def test_the_docstring_tree_parses() -> None:
    tree = documented_tree()
    assert tree["AitError"] == (None, None)
    assert tree["UsageError"] == ("AitError", "RuntimeError")
    assert tree["InvalidName"] == ("UsageError", "ValueError")
    assert tree["EntryTooLarge"] == ("BusError", "ValueError")
    assert tree["EmbeddedRedisError"] == ("BusError", None)


def test_the_docstring_tree_is_the_class_hierarchy() -> None:
    tree = documented_tree()
    assert set(tree) == set(ait.errors.__all__)
    for name, (parent, also) in tree.items():
        cls = getattr(ait.errors, name)
        expected = [getattr(ait.errors, parent) if parent else Exception]
        if also:
            expected.append(getattr(builtins, also))
        assert list(cls.__bases__) == expected, name


def test_every_error_class_is_documented_and_exported() -> None:
    classes = {
        name
        for name, obj in vars(ait.errors).items()
        if isinstance(obj, type) and issubclass(obj, ait.AitError)
    }
    assert classes == set(documented_tree()) == set(ait.errors.__all__)


def test_usage_error_is_a_runtime_error() -> None:
    assert issubclass(ait.UsageError, RuntimeError)
    assert issubclass(ait.InvalidName, ValueError)
    assert issubclass(ait.CodecError, ValueError)
    assert issubclass(ait.EntryTooLarge, ValueError)
    assert issubclass(ait.BusError, ait.AitError)
    assert not issubclass(ait.BusError, OSError)


def test_no_name_shadows_a_builtin() -> None:
    """`ait.ConnectionError` would shadow the builtin for every `from ait import *`."""
    for module in MODULES:
        shadowing = set(importlib.import_module(module).__all__) & set(dir(builtins))
        assert not shadowing, (module, shadowing)


def test_codec_error_message() -> None:
    assert str(ait.CodecError("bad h", entry_id="1-0")) == "entry 1-0: bad h"
    assert str(ait.CodecError("bad h")) == "bad h"
    error = ait.CodecError("bad h", entry_id="1-0")
    assert (error.reason, error.entry_id) == ("bad h", "1-0")


def test_entry_too_large_message() -> None:
    error = ait.EntryTooLarge(2_000_000, 1_048_576)
    assert (error.size, error.limit) == (2_000_000, 1_048_576)
    assert "2000000 bytes" in str(error)
    assert "1048576 bytes" in str(error)
    assert "nothing was written" in str(error)
