"""The commands of a cell: split where bash would end each one, and run as one script that marks
where each command's output starts and ends, and its exit status, so that they can be shown apart.
"""

from __future__ import annotations

import re
import subprocess


def split_commands(text: str) -> list[str]:
    """Split shell text into whole commands: one per line, or more lines where bash says the
    command goes on (an open quote, loop or here-document, a trailing backslash)."""
    commands: list[str] = []
    chunk: list[str] = []
    for line in text.splitlines():
        if not chunk and not line.strip():
            continue
        chunk.append(line)
        candidate = "\n".join(chunk)
        if not candidate.rstrip().endswith("\\") and _complete(candidate):
            commands.append(candidate)
            chunk = []
    if chunk:
        commands.append("\n".join(chunk))  # let bash report what is wrong with it
    return commands


def _complete(command: str) -> bool:
    checked = subprocess.run(["bash", "-n"], input=command, text=True, capture_output=True)
    # An open here-document is only a warning for bash -n; for us the command goes on.
    return checked.returncode == 0 and "here-document" not in checked.stderr


_START, _END = "\x1e", "\x1f"


def script(commands: list[str]) -> str:
    parts = []
    for number, command in enumerate(commands):
        parts.append(f"printf '{_START}{number}\\n'; printf '{_START}{number}\\n' >&2")
        parts.append(command)
        parts.append(f"printf '{_END}%s\\n' \"$?\"; printf '{_END}\\n' >&2")
    return "\n".join(parts) + "\n"


def sections(text: str) -> dict[int, tuple[str, str | None]]:
    """Output of each command by number, with its exit status when the shell reached its end."""
    found: dict[int, tuple[str, str | None]] = {}
    for match in re.finditer(f"{_START}(\\d+)\n(.*?)(?:{_END}(\\d*)\n|\\Z)", text, re.S):
        found[int(match[1])] = (match[2], match[3] or None)
    return found
