"""Every ```python block of the documentation runs, as a reader would run it.

The blocks of `README.md` and `docs/**/*.md` are complete programs. Each runs in a
subprocess of its own with the venv's python, in a fresh temporary directory, with the
repository on `PYTHONPATH` and no API keys in its environment; it must exit 0 within the
timeout. A block that cannot run here (it needs a key, a GPU, a service) says so on the
line before its fence: `<!-- not run: the reason -->`. Blocks that load the SmolLM2 model
are marked `slow`; blocks that kill their own redis-server are marked `fault`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
SKIP_MARK = "<!-- not run:"
OPEN = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
# Keys a developer may have set: a block must never reach a real provider.
SECRETS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AIT_REDIS_URL")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def slow(self) -> bool:
        """It loads the SmolLM2 model."""
        return "smollm2" in self.code.lower()

    @property
    def fault(self) -> bool:
        """It kills its own redis-server (to show a restart)."""
        return "server.kill" in self.code


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def extract(path: Path) -> tuple[list[Block], list[str]]:
    """The runnable python blocks of one file, and the `where` of the skipped ones."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    skipped: list[str] = []
    index = 0
    while index < len(lines):
        match = OPEN.match(lines[index])
        if match is None:
            index += 1
            continue
        indent = match["indent"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        if index >= len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{start + 1}: unclosed ```python block")
        index += 1
        previous = lines[start - 1].strip() if start else ""
        block = Block(path, start + 1, "\n".join(body) + "\n")
        if previous.startswith(SKIP_MARK):
            skipped.append(block.where)
        else:
            blocks.append(block)
    return blocks, skipped


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in extract(path)[0]]


def _param(block: Block) -> object:
    marks = [pytest.mark.slow] * block.slow + [pytest.mark.fault] * block.fault
    return pytest.param(block, id=block.where, marks=marks)


def test_blocks_are_found() -> None:
    """The extraction works (a regex gone wrong would make every other test vanish)."""
    blocks = all_blocks()
    assert len(blocks) >= 20
    assert any(block.path.name == "README.md" for block in blocks)


def test_skip_markers_give_a_reason() -> None:
    for path in doc_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith(SKIP_MARK):
                reason = line.strip()[len(SKIP_MARK) :].removesuffix("-->").strip()
                assert reason, f"{path.relative_to(ROOT)}:{number}: say why the block cannot run"


@pytest.mark.parametrize("block", [_param(block) for block in all_blocks()])
def test_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        pytest.fail(f"{block.where}: did not finish in {TIMEOUT:g} s\n{output}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"{block.where}: exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}",
            pytrace=False,
        )


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
