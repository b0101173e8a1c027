"""What `ait chat` prints of a conversation: the shown branch, numbered, live.

```
  1 you: hello
  2 assistant: Hi there!
  3 bob: and me?
  4 assistant (to bob): Hi Bob.
```

A message's number is its place in the view (what `/show` prints, what `/select N K`,
`/edit N` and `/regen N` take). `you` are the messages of this client id; other inputs
carry their client id, answers to them `(to ID)`. Every message the view shows is printed
once, as it arrives; an answer streams on its line. When another message comes in between,
that line closes and the answer goes on in a line of its own: `  4 assistant ...: more`.
A message another client added as an alternative of a shown one (an edit, another answer)
is not shown (the view keeps its branch): a notice says how to see it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from ..client import ClientView
from ..conversation import Message
from ._common import Style
from ._terminal import Terminal

__all__ = ["Transcript"]

_ENDED = ("complete", "cancelled", "error")


class Transcript:
    """Prints a client's view of its channel to a terminal as it changes.

    Args:
        view: the view to print.
        terminal: where to.
        style: colors, or none.
        client_id: whose messages are `you`.
    """

    def __init__(self, view: ClientView, terminal: Terminal, style: Style, *, client_id: str):
        self.view = view
        self.terminal = terminal
        self.style = style
        self.client_id = client_id
        self._printed: dict[str, int] = {}  # message id -> characters of its text printed
        self._ended: set[str] = set()
        self._alternatives: dict[str, int] = {}  # shown message id -> alternatives known
        #: Inputs cancelled here before any agent took them: shown `(cancelled)`.
        self.cancelled: set[str] = set()
        self._held = False

    async def follow(self) -> None:
        """Print the view's changes as they come, until the view closes."""
        tree = self.view.tree
        tree.add_listener(self)
        try:
            async with self.view.changes() as changes:
                self.update()  # what came before this listened
                async for _ in changes:
                    self.update()
        finally:
            tree.remove_listener(self)

    def tree_changed(self, reshaped: bool, appended: list[str], messages: set[str]) -> None:
        """The tree's listener: a tree reshaped may hold alternatives the view does not show
        (the view keeps its branch and says nothing). A run joins its branch point with its
        first message, so a new message may add an alternative as well."""
        if reshaped or appended:
            self._count_alternatives()

    def render(self) -> None:
        """Print the whole shown branch, numbered (and count it printed)."""
        view, style = self.view, self.style
        if view.has_older:
            self.terminal.print(style.dim("   ... older messages: /older"))
        for number, message in enumerate(view.messages, 1):
            self.terminal.print(self.line(number, message))
            self._printed[message.id] = len(message.text)
            if message.status in _ENDED:
                self._ended.add(message.id)
        self._count_alternatives(quiet=True)

    def cancel_input(self, message_id: str) -> None:
        """Show input `message_id` cancelled (before any agent took it)."""
        self.cancelled.add(message_id)
        ids = self.view.message_ids
        if message_id in ids:
            number = ids.index(message_id) + 1
            self.terminal.print(self.line(number, self.view.messages[number - 1]))

    def line(self, number: int, message: Message) -> str:
        """One message on one line, as `/show` prints it."""
        text = message.text.strip().replace("\n", " ") or self.style.dim("(no text yet)")
        return f"{self._head(number, message)}{self._status(message)}: {text}{self._tools(message)}"

    @contextlib.contextmanager
    def held(self) -> Generator[None]:
        """Print nothing new meanwhile (a `render()` follows: older messages revealed would
        print as new ones first)."""
        self._held = True
        try:
            yield
        finally:
            self._held = False

    def update(self) -> None:
        """Print what is new in the view: new messages, more text, how answers ended."""
        if self._held:
            return
        for number, message in enumerate(self.view.messages, 1):
            if message.id not in self._ended:
                self._print(number, message)

    def _print(self, number: int, message: Message) -> None:
        terminal, mid = self.terminal, message.id
        printed = self._printed.get(mid)
        if message.run_id is None:  # an input: whole at once
            terminal.print(self.line(number, message))
            self._printed[mid] = len(message.text)
            self._ended.add(mid)
            return
        ended = message.status in _ENDED
        if not ended and not terminal.streams:
            return  # printed whole when it ends
        new = message.text[printed or 0 :]
        end = self._status(message, brackets=True) + self._tools(message) if ended else ""
        rest = new + end + ("\n" if ended else "")
        if printed is None or (terminal.owner != mid and (new or end)):
            continued = self.style.dim(" ...") if printed is not None else ""
            colon = ":" if end and not new else ": "
            terminal.write(
                f"{self._head(number, message)}{continued}{colon}{rest}", owner=mid, fresh=True
            )
        elif terminal.owner == mid and rest:
            terminal.write(rest, owner=mid)
        self._printed[mid] = len(message.text)
        if ended:
            self._ended.add(mid)

    def _head(self, number: int, message: Message) -> str:
        """`  4 assistant (to bob) [2/2]`: number, who, and which alternative."""
        style = self.style
        if message.run_id is None:
            mine = message.client_id == self.client_id
            who = style.bold("you") if mine else style.green(message.client_id or message.role)
        else:
            run = self.view.tree.run(message.run_id)
            asker = run.client_id if run is not None else None
            who = style.cyan(message.role)
            if asker is not None and asker != self.client_id:
                who += style.cyan(f" (to {asker})")
        siblings = len(self.view.siblings(message.id))
        if siblings > 1:
            who += style.yellow(f" [{self.view.selected_index(message.id) + 1}/{siblings}]")
        return f"{number:>3} {who}"

    def _status(self, message: Message, *, brackets: bool = False) -> str:
        status: str = message.status
        if message.run_id is None and message.id in self.cancelled:
            status = "cancelled"
        if status in ("complete", "streaming"):
            return ""
        if status == "error" and message.error is not None and brackets:
            return self.style.red(f" [error {message.error.code}: {message.error.message}]")
        return self.style.dim(f" [{status}]" if brackets else f" ({status})")

    def _tools(self, message: Message) -> str:
        return "".join(
            self.style.dim(f" [tool {part.name}: {part.state}]")
            for part in message.parts
            if part.type == "tool-call"
        )

    def _count_alternatives(self, *, quiet: bool = False) -> None:
        """Count the alternatives of the shown messages; say which are new (unless
        `quiet`): another client's edit or answer, which this view does not show."""
        for number, message in enumerate(self.view.messages, 1):
            siblings = self.view.siblings(message.id)
            known = self._alternatives.get(message.id)
            self._alternatives[message.id] = len(siblings)
            if quiet or known is None or len(siblings) <= known or siblings[-1].id == message.id:
                continue
            newest = siblings[-1]
            who = newest.client_id
            if newest.run_id is not None:
                run = self.view.tree.run(newest.run_id)
                who = run.client_id if run is not None else None
            who = "you" if who == self.client_id else who or "someone"
            what = "another answer" if message.run_id is not None else "another version"
            self.terminal.print(
                self.style.dim(
                    f"    ({who} added {what} as alternative {len(siblings)} of message "
                    f"{number}: /select {number} {len(siblings)} shows it)"
                )
            )
