"""Every error labkit raises on purpose, in one tree.

    LabError
    ├── LabNotRunning(LabError, RuntimeError)      no lab process answers for this LABKIT_HOME
    ├── LabStartFailed(LabError, RuntimeError)     the lab process could not start
    ├── InstanceNotFound(LabError, LookupError)    no such instance (id or Name tag) in this lab
    └── InstanceNotRunning(LabError, RuntimeError) the instance exists but is not running

Each message says what happened, why, and what to type next. Errors that AWS itself
returns (AccessDenied, IncorrectState, ...) are never wrapped: they are the lesson.
"""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error labkit raises on purpose."""


class LabNotRunning(LabError, RuntimeError):
    """No lab process answers for this lab's state directory."""


class LabStartFailed(LabError, RuntimeError):
    """The lab process exited or did not answer while starting."""


class InstanceNotFound(LabError, LookupError):
    """No instance with that id or Name tag exists in this lab."""


class InstanceNotRunning(LabError, RuntimeError):
    """The instance exists but is stopped or terminated."""
