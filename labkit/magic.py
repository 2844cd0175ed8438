"""`%%instance`: a notebook cell typed at an instance's shell prompt.

    %%instance demo-instance
    aws iam list-users
    ec2-metadata --instance-id

The instance is named by id or Name tag. Each line runs in turn in one shell on that instance, as
typed after `ssh ec2-user@...`, and the cell shows them like a terminal: the prompt and command,
its output, its errors set apart, a non-zero exit status. As with IPython's `!` commands, a
Python value in braces (`{key_id}`) is filled in before the line runs. Interrupting the kernel (■)
stops the running command and everything it started, as Ctrl-C would; the cell shows `^C` and
stops there, and so does Run All. Registered by
`labkit.connect()` when it runs in IPython, on the lab it returns: each `connect()` binds the cell
magic to its own lab.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from labkit import awserror
from labkit.transcript import CommandInterrupted

if TYPE_CHECKING:
    from labkit.connection import Connection

_PYTHON_VALUE = re.compile(r"\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]+\])*)\}")


def expand(text: str, namespace: dict[str, Any]) -> str:
    """Fill in `{name}`, `{name.attr}` and `{name["key"]}` from `namespace`; leave anything else as typed."""

    def value(match: re.Match[str]) -> str:
        root = match[1].split(".", 1)[0].split("[", 1)[0]
        if root not in namespace:
            return match[0]
        try:
            return str(eval(match[1], {}, namespace))  # noqa: S307 - the student's own notebook values
        except Exception:
            return match[0]

    return _PYTHON_VALUE.sub(value, text)


def instance_magic(lab: Connection, line: str, cell: str, local_ns: dict[str, Any] | None = None) -> None:
    """Run `cell`, line by line, on `lab`'s instance named in `line`, and show it like a terminal."""
    from IPython.display import display

    ref = line.strip()
    if not ref:
        print("Usage: %%instance INSTANCE (an instance id or Name tag), then one shell command per line.")
        return
    instance = lab.instance(ref)
    try:
        transcript = instance.run_lines(expand(cell, local_ns or {}))
    except CommandInterrupted as stopped:
        display(stopped.shown)  # what ran, up to the ^C; the kernel then reports the interrupt in one line
        raise
    display(transcript)


def register(lab: Connection) -> None:
    """Make `%%instance` run on `lab`'s instances (in place of any lab registered before), and AWS's
    refusals show as AWS's one line (labkit/awserror.py); in IPython only, elsewhere nothing happens."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def instance(line: str, cell: str) -> None:
        instance_magic(lab, line, cell, shell.user_ns)

    instance.__doc__ = __doc__
    shell.register_magic_function(instance, magic_kind="cell", magic_name="instance")
    awserror.register(shell)
