"""Every error labkit raises on purpose, in one tree.

    LabError
    ├── LabNotRunning(LabError, RuntimeError)      no lab process answers for this LABKIT_HOME
    ├── LabStartFailed(LabError, RuntimeError)     the lab process could not start
    ├── InstanceNotFound(LabError, LookupError)    no such instance (id or Name tag) in this lab
    ├── InstanceNotRunning(LabError, RuntimeError) the instance exists but is not running
    ├── ResourceNotFound(LabError, LookupError)    a role, profile or policy named to labkit is not in this lab
    ├── CheckpointNotFound(LabError, LookupError)  no notebook by that number
    ├── QuestionNotFound(LabError, LookupError)    no review question by that number (quiz.ask, quiz.check)
    ├── UserNotFound(LabError, LookupError)        `labkit --user USER`: no such user on this host
    ├── LabNotReady(LabError, RuntimeError)        the lab lacks what earlier notebooks build
    └── ClassNotListed(LabError, RuntimeError)     the class page could not learn the class from the hub

Each message says what happened, why, and what to type next. In a notebook, IPython shows that
message alone, not a traceback from inside labkit. Errors that AWS itself returns (AccessDenied,
IncorrectState, ...) are never wrapped: they are the lesson.
"""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error labkit raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message, which says what to do."""
        return [f"\033[1;31m{type(self).__name__}\033[0m: {self}"]


class LabNotRunning(LabError, RuntimeError):
    """No lab process answers for this lab's state directory."""


class LabStartFailed(LabError, RuntimeError):
    """The lab process exited or did not answer while starting."""


class InstanceNotFound(LabError, LookupError):
    """No instance with that id or Name tag exists in this lab."""


class InstanceNotRunning(LabError, RuntimeError):
    """The instance exists but is stopped or terminated."""


class CheckpointNotFound(LabError, LookupError):
    """No notebook (checkpoint) by that number."""


class QuestionNotFound(LabError, LookupError):
    """No review question by that number (or the number is not a whole number); see `labkit.quiz`."""


class UserNotFound(LabError, LookupError):
    """`labkit --user USER`: the host has no user by that name (or uid)."""


class LabNotReady(LabError, RuntimeError):
    """The lab lacks what the notebooks before this one build."""


class ResourceNotFound(LabError, LookupError):
    """A role, instance profile or policy given to a labkit function does not exist in this lab."""


class ClassNotListed(LabError, RuntimeError):
    """The class page could not learn from the hub who is in the class (labkit/classroom/gather.py)."""
