"""`%%instance`: a notebook cell typed at an instance's shell prompt.

    %%instance demo-instance
    aws iam list-users
    curl http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2

The instance is named by id or Name tag. Each line runs in turn in one shell on that instance, as
typed after `ssh ec2-user@...`, and the cell shows them like a terminal: the prompt and command,
its output, its errors set apart, a non-zero exit status. As with IPython's `!` commands, a
Python value in braces (`{key_id}`) is filled in before the line runs. Registered by
`labkit.connect()` when it runs in IPython.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.lab import Lab

_lab: Lab | None = None
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


def instance_magic(line: str, cell: str, local_ns: dict[str, Any] | None = None) -> None:
    from IPython.display import display

    from labkit.lab import connect

    ref = line.strip()
    if not ref:
        print("Usage: %%instance INSTANCE (an instance id or Name tag), then one shell command per line.")
        return
    lab = _lab if _lab is not None else connect()
    display(lab.instance(ref).run_lines(expand(cell, local_ns or {})))


def register(lab: Lab) -> None:
    """Make `%%instance` run on `lab`'s instances, and AWS's refusals show as AWS's one line
    (labkit/awserror.py); in IPython only, elsewhere nothing happens."""
    global _lab
    _lab = lab
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "instance" not in shell.magics_manager.magics["cell"]:
        shell.register_magic_function(_with_namespace(shell), magic_kind="cell", magic_name="instance")
    if shell is not None:
        from labkit import awserror

        awserror.register(shell)


def _with_namespace(shell: Any) -> Any:
    def instance(line: str, cell: str) -> None:
        instance_magic(line, cell, shell.user_ns)

    instance.__doc__ = __doc__
    return instance
