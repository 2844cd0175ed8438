"""How a notebook shows an error that AWS returned: AWS's words, not botocore's insides.

    ec2.associate_iam_instance_profile(...)      # a second association, on purpose
    botocore.exceptions.ClientError: An error occurred (IncorrectState) when calling the
    AssociateIamInstanceProfile operation: There is an existing association for instance i-…

A boto3 call that AWS refuses raises `ClientError` (or one of its modelled subclasses). Python
would print forty lines from inside botocore above the one line that matters; in a notebook
connected to the lab, that one line is all the cell shows. The cell still raises: the kernel
reports the error, so Run All stops there as it would, and nbval sees it. Registered by
`labkit.connect()` in IPython; every other exception keeps IPython's usual traceback.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


def _show(
    shell: Any, etype: type[BaseException], value: BaseException, tb: TracebackType | None, tb_offset: Any = None
) -> list[str]:
    kind = type(value)
    stb = [f"\033[0;31m{kind.__module__}.{kind.__qualname__}\033[0m: {value}"]
    shell._showtraceback(etype, value, stb)  # IPython's own way to show a structured traceback
    return stb


def register(shell: Any) -> None:
    """Show AWS's refusals in `shell` (an IPython shell) as AWS's one line."""
    from botocore.exceptions import ClientError

    shell.set_custom_exc((ClientError,), _show)
