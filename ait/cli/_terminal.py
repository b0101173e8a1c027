"""The chat's terminal: a prompt with line editing and history, and output above it.

```python
async with Terminal(history=path) as terminal:
    line = await terminal.read_line()        # None at the end of input (Ctrl-D)
    terminal.write("text", owner=key)        # above the prompt while it waits
```

A thread reads the lines (`input()`, with the standard `readline` module on a terminal), so
the event loop never waits for the keyboard. While the prompt waits, `write()` clears it,
writes, and draws it again with what was typed so far. Text written without a final
newline (an answer streaming) is the open *tail*: later text of the same `owner` continues
it, above the prompt too; the tail is lost (a new line must begin) once anything else is
written or a typed line comes in between.

Between prompts the terminal does not echo: what is typed ahead waits for the next prompt
instead of landing in the middle of an answer. Everything is restored on exit.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import sys
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Terminal"]

HISTORY_LINES = 1_000
_ANSI = re.compile(r"\033\[[0-9;?]*[A-Za-z]")


class Terminal:
    """Lines in, through a prompt; text out, above the prompt while it waits.

    Args:
        history: the file that keeps the lines typed, across chats (None: none kept).
        commands: the words Tab completes at the start of a line.
    """

    def __init__(self, *, history: Path | None = None, commands: tuple[str, ...] = ()) -> None:
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty()
        self.prompt = "> " if self.interactive else ""
        #: The cursor moves (ANSI): not on a `dumb` terminal, where output goes under the
        #: prompt and an open tail ends when a prompt comes.
        self.cursor = self.interactive and os.environ.get("TERM", "dumb") != "dumb"
        self._history = history if self.interactive else None
        self._commands = commands
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        # off: no prompt; requested: a line was asked for, the prompt is coming; shown.
        self._prompt: Literal["off", "requested", "shown"] = "off"
        self._column = 0  # display columns of the open tail (0: the cursor starts a line)
        self._owner: object = None  # whose text the open tail is
        self._echo_rows = 0  # rows of the line typed last, while nothing was written after it
        self._saved: list[Any] | None = None  # the terminal's settings, restored on exit
        self._readline: Any = None  # the readline module, on a terminal
        self._library: Any = None  # readline's C library: to redraw the line it edits
        self._lines: tuple[
            MemoryObjectSendStream[str | None], MemoryObjectReceiveStream[str | None]
        ]
        self._lines = anyio.create_memory_object_stream[str | None](1)

    async def __aenter__(self) -> Terminal:
        if self.interactive:
            self._set_up()
        token = anyio.lowlevel.current_token()
        threading.Thread(
            target=self._read, args=(token,), name="ait chat input", daemon=True
        ).start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        for stream in self._lines:
            stream.close()

    def close(self) -> None:
        """Take the prompt away and give the terminal its settings back. Idempotent.

        The reading thread may still wait in `input()`: it is a daemon, it ends with the
        process; the line it may still read goes nowhere."""
        with self._lock:
            if self._prompt != "off" and self._column:
                self._column, self._owner = 0, None  # the cursor starts the prompt's row
            if self._prompt == "shown":
                self._out(self._hide_prompt())
                if self._variable("enable-bracketed-paste") == "on":
                    self._out("\033[?2004l")  # readline turns it on while it reads
            self._prompt = "off"
            if self._saved is not None:
                self._echo(self._saved)
                self._saved = None

    # -- input -------------------------------------------------------------------------------

    async def read_line(self) -> str | None:
        """The next line typed, or None at the end of input (Ctrl-D at an empty prompt)."""
        with self._lock:
            self._echo_rows = 0
            if self.interactive:  # (no prompt shows when reading from a pipe)
                if self._column:
                    self._out("\n")  # the prompt starts a row of its own; the tail stays open
                    if not self.cursor:
                        self._column, self._owner = 0, None  # no way back to it
                self._prompt = "requested"
        self._requests.put(self.prompt)
        try:
            return await self._lines[1].receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    def typed(self) -> str:
        """What is typed at the prompt, not sent yet."""
        if self._prompt != "shown" or self._readline is None:
            return ""
        return str(self._readline.get_line_buffer())

    def discard_typed(self) -> bool:
        """Clear what is typed at the prompt; False when this terminal cannot."""
        with self._lock:
            if self._prompt != "shown" or self._library is None:
                return False
            self._out(self._hide_prompt())
            self._library.rl_replace_line(b"", 0)
            ctypes.c_int.in_dll(self._library, "rl_point").value = 0
            self._redraw()
            return True

    def erase_echo(self) -> None:
        """Take back the line just typed (and echoed), when nothing was written after it."""
        with self._lock:
            if self._echo_rows and self._prompt == "off" and self.cursor:
                self._out(f"\033[{self._echo_rows}A\r\033[J")
            self._echo_rows = 0

    def _read(self, token: anyio.lowlevel.EventLoopToken) -> None:
        while True:
            prompt = self._requests.get()
            saved = self._saved
            if saved is not None:
                # readline echoes what is typed only if the terminal did before it started.
                self._echo(saved)
            try:
                line: str | None = input(prompt)
            except EOFError:
                line = None
            except (OSError, ValueError):  # stdin closed under us: the end of input
                line = None
            with self._lock:
                self._prompt = "off"
                if self._saved is not None:  # (None: the chat is over, the terminal restored)
                    self._echo(self._saved, on=False)
                if self.interactive:
                    # Enter left the cursor under the typed line; Ctrl-D after the prompt.
                    if line is not None:
                        self._echo_rows = _rows(prompt + line, self._columns())
                        self._column, self._owner = 0, None
                    else:
                        self._echo_rows, self._column, self._owner = 0, _width(prompt), None
            if line and self._readline is not None:
                self._remember(line)
            try:
                anyio.from_thread.run_sync(self._lines[0].send_nowait, line, token=token)
            except (anyio.RunFinishedError, anyio.ClosedResourceError, anyio.WouldBlock):
                return  # the chat is over
            if line is None:
                return

    # -- output ------------------------------------------------------------------------------

    @property
    def streams(self) -> bool:
        """Whether text written a piece at a time shows as one line: not above the prompt of
        a terminal without cursor moves."""
        return self.cursor or self._prompt == "off"

    @property
    def owner(self) -> object:
        """Whose text the open tail is (None: no tail, or nobody's)."""
        return self._owner

    def write(self, text: str, *, owner: object = None, fresh: bool = False) -> None:
        """Write `text`, above the prompt while it waits. `fresh`: on a line of its own (the
        open tail ends first). Text not ending with a newline is the open tail of `owner`;
        text written without `fresh` continues the open tail, whoever's it is."""
        with self._lock:
            self._echo_rows = 0
            out: list[str] = []
            if self._prompt == "shown":
                out.append(self._hide_prompt())
            if self._prompt != "off":
                # The cursor starts the row under the open tail (the prompt's row).
                if self._column and not fresh:
                    out.append(self._back_to_tail())
            elif self._column and fresh:
                out.append("\n")
            if fresh:
                self._column = 0
            out.append(text)
            self._column = _advance(self._column, text)
            self._owner = owner if self._column else None
            if self._prompt != "off" and self._column:
                out.append("\n")  # the prompt below the tail, which stays open
                if not self.cursor:
                    self._column, self._owner = 0, None  # no way back to it
            self._out("".join(out))
            if self._prompt == "shown":
                self._redraw()

    def print(self, text: str = "") -> None:
        """Write `text` as a line of its own."""
        self.write(text + "\n", fresh=True)

    def _out(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns or 80
        except OSError:
            return 80

    def _hide_prompt(self) -> str:
        """To the start of the prompt's first row, the prompt cleared (under the prompt,
        without cursor moves)."""
        if not self.cursor:
            return "\n"
        typed = self.typed()
        if self._library is not None:  # the cursor may be inside the line
            point = ctypes.c_int.in_dll(self._library, "rl_point").value
            typed = typed.encode()[:point].decode(errors="ignore")
        rows = _rows(self.prompt + typed, self._columns()) - 1  # above the cursor's
        return "\r" + (f"\033[{rows}A" if rows else "") + "\033[J"

    def _back_to_tail(self) -> str:
        """From the row under the open tail to its end (a tail that filled its last row
        ends where the next row starts: here)."""
        column = self._column % self._columns()
        return f"\033[A\r\033[{column}C" if column and self.cursor else ""

    def _redraw(self) -> None:
        if self._library is not None:
            self._library.rl_forced_update_display()
        else:
            self._out(self.prompt + self.typed())

    # -- readline ----------------------------------------------------------------------------

    def _set_up(self) -> None:
        try:
            import readline
            import termios
        except ImportError:  # not on this system: plain lines, no editing
            return
        self._readline = readline
        try:  # the C library, for the few calls the module lacks (a redraw, clearing a line)
            library = ctypes.CDLL(readline.__file__ or "")
            for name in ("rl_forced_update_display", "rl_replace_line", "rl_point"):
                getattr(library, name)
            self._library = library
        except (OSError, AttributeError):
            self._library = None
        readline.set_auto_history(False)
        readline.set_pre_input_hook(self._prompt_shown)
        if self._commands:
            readline.set_completer_delims(" ")
            readline.set_completer(self._complete)
            readline.parse_and_bind("tab: complete")
        if self._history is not None:
            try:
                readline.read_history_file(self._history)
            except OSError:
                pass
            if readline.get_current_history_length() > 2 * HISTORY_LINES:
                readline.set_history_length(HISTORY_LINES)
                self._write_history(readline.write_history_file)
        self._saved = termios.tcgetattr(sys.stdin.fileno())
        self._echo(self._saved, on=False)

    def _echo(self, settings: list[Any], *, on: bool = True) -> None:
        """The terminal's `settings`, echoing what is typed or not (nor ^C)."""
        import termios

        changed = list(settings)
        if not on:
            changed[3] &= ~(termios.ECHO | termios.ECHOCTL)
        try:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, changed)
        except termios.error:
            pass  # the terminal went away

    def _prompt_shown(self) -> None:
        with self._lock:
            if self._prompt == "requested":
                self._prompt = "shown"

    def _complete(self, text: str, state: int) -> str | None:
        if self.typed()[: len(text)] != text or " " in self.typed():
            return None
        found = [c + " " for c in self._commands if c.startswith(text)]
        return found[state] if state < len(found) else None

    def _remember(self, line: str) -> None:
        readline = self._readline
        count = readline.get_current_history_length()
        if count and readline.get_history_item(count) == line:
            return
        readline.add_history(line)
        self._write_history(lambda path: readline.append_history_file(1, str(path)))

    def _write_history(self, write: Callable[[Path], object]) -> None:
        if self._history is None:
            return
        try:
            self._history.parent.mkdir(parents=True, exist_ok=True)
            if not self._history.exists():
                self._history.touch(mode=0o600)
            write(self._history)
        except OSError:
            self._history = None  # not writable: keep it in memory for this chat

    def _variable(self, name: str) -> str | None:
        if self._library is None:
            return None
        getter = self._library.rl_variable_value
        getter.restype = ctypes.c_char_p
        value = getter(name.encode())
        return value.decode() if value else None


def _advance(column: int, text: str) -> int:
    """The display column after writing `text` from `column` (wide characters take two)."""
    for char in _ANSI.sub("", text):
        if char in "\r\n":
            column = 0
        elif char == "\t":
            column += 8 - column % 8
        elif char.isprintable() and not unicodedata.combining(char):
            column += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return column


def _width(text: str) -> int:
    return _advance(0, text)


def _rows(text: str, columns: int) -> int:
    """The rows `text` takes from the start of a row, to where its end leaves the cursor
    (a row filled to the last column puts it at the start of the next)."""
    return sum(_width(line) // columns + 1 for line in text.split("\n"))
