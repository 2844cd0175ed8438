"""What a command on an instance showed, rendered as a terminal shows it: in a notebook's cell (HTML)
or as text. `CommandResult` for one command, `Transcript` for several run in one shell, and
`CommandInterrupted` for the commands the student stopped (■, Ctrl-C).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

TERMINAL_STYLE = "background:#1e1e1e;color:#e6e6e6;padding:8px 10px;border-radius:4px;font-family:monospace"
INTERRUPTED = "^C"  # what a terminal shows where Ctrl-C stopped a command
TIMED_OUT = (
    "[stopped after {seconds:g} s: {what} was still running. A command on an instance that never ends "
    "holds up its cell: press ■ (interrupt the kernel) to stop it sooner.]"
)


@dataclass(frozen=True)
class CommandResult:
    """One command run on an instance, shown like a terminal."""

    prompt: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    stopped: str = ""
    """Empty when the command ended by itself; `^C` when it was interrupted (then the shell's
    status, 130); otherwise labkit's note saying why it stopped it (shown in place of a status)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.stopped

    @property
    def typed(self) -> str:
        """The command as a terminal shows it: continuation lines after bash's `> ` prompt."""
        return "\n> ".join(self.command.split("\n"))

    @property
    def _status(self) -> str:
        return f"[exit status {self.exit_code}]" if self.exit_code and self.stopped in ("", INTERRUPTED) else ""

    def __str__(self) -> str:
        lines = [f"{self.prompt} {self.typed}", self.stdout.rstrip("\n"), self.stderr.rstrip("\n")]
        lines += [self.stopped, self._status]
        return "\n".join(line for line in lines if line)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        parts = [f'<span style="color:#8ae234">{html.escape(self.prompt)}</span> {html.escape(self.typed)}']
        if self.stdout:
            parts.append(html.escape(self.stdout.rstrip("\n")))
        if self.stderr:
            parts.append(f'<span style="color:#ff8c8c">{html.escape(self.stderr.rstrip(chr(10)))}</span>')
        parts += [
            f'<span style="color:#fce94f">{html.escape(line)}</span>' for line in (self.stopped, self._status) if line
        ]
        return f'<pre style="{TERMINAL_STYLE}">' + "\n".join(parts) + "</pre>"


@dataclass(frozen=True)
class Transcript:
    """Several commands run in one shell on an instance, shown as one terminal session."""

    results: tuple[CommandResult, ...]
    not_run: tuple[str, ...] = ()
    """The commands after one that was stopped (interrupted, or past its time): they never ran."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.not_run

    @property
    def _not_run(self) -> str:
        typed = ("; ".join(line.strip() for line in command.split("\n")) for command in self.not_run)
        return f"[not run: {' | '.join(typed)}]" if self.not_run else ""

    def __str__(self) -> str:
        return "\n".join([str(r) for r in self.results] + ([self._not_run] if self.not_run else []))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        inner = [r._repr_html_().split(">", 1)[1].rsplit("</pre>", 1)[0] for r in self.results]
        if self.not_run:
            inner.append(f'<span style="color:#fce94f">{html.escape(self._not_run)}</span>')
        return f'<pre style="{TERMINAL_STYLE}">' + "\n".join(inner) + "</pre>"


class CommandInterrupted(KeyboardInterrupt):
    """The student interrupted a command on an instance (■ in a notebook): it and everything it
    started were stopped, as Ctrl-C stops them on a terminal. `shown` is what ran, a terminal's view
    of it, ending in `^C`. A KeyboardInterrupt, so that Run All stops there as it would."""

    def __init__(self, shown: Transcript | CommandResult) -> None:
        self.shown = shown
        results = shown.results if isinstance(shown, Transcript) else (shown,)
        what = "the command"
        if results:
            first, *more = results[-1].command.split("\n")
            what = f"`{first}{' …' if more else ''}`"
        later = ", and the lines after it were not run" if isinstance(shown, Transcript) and shown.not_run else ""
        super().__init__(f"{what} was stopped with everything it started{later}. Run the cell again to start over.")

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: this one line, after the cell's transcript."""
        return [f"\033[1;31mKeyboardInterrupt\033[0m: {self}"]


def as_a_terminal_shows(text: str) -> str:
    """What is left on screen of each line once carriage returns have redrawn it (progress meters)."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
