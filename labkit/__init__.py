"""labkit: an offline lab for learning IAM roles for EC2.

    import labkit
    lab = labkit.connect()                      # starts the lab in the background if needed
    iam = lab.client("iam")                     # boto3, acting as the person in the console
    lab.instance("demo-instance").run("aws iam list-users")   # the real aws CLI, on the instance

moto plays AWS on loopback with IAM authorization on; labkit adds what moto lacks: each
instance's Instance Metadata Service, and each instance a machine of its own. In a notebook,
`connect()` also registers the `%%instance NAME` cell magic.

Layers, each built on the one before, never the reverse: the connection to the lab (`lab.py`:
clients, instances, a fresh reset); the lesson's names (`catalogue.py`); the lesson (`solutions.py`,
`checks.py`, `display.py`, `quiz.py`, `magic.py`), gathered in `lesson.py`, whose `Lab` is what
`connect()` returns.
"""

from labkit import quiz
from labkit.checks import Check, CheckReport
from labkit.connection import LabStatus
from labkit.display import Diagram, diagram, policy_table
from labkit.errors import (
    CheckpointNotFound,
    InstanceNotFound,
    InstanceNotRunning,
    LabError,
    LabNotReady,
    LabNotRunning,
    LabStartFailed,
    QuestionNotFound,
    ResourceNotFound,
)
from labkit.instances import Instance
from labkit.lab import down, up
from labkit.lesson import Lab, connect
from labkit.transcript import CommandResult, Transcript

__all__ = [
    "Check",
    "CheckReport",
    "CheckpointNotFound",
    "CommandResult",
    "Diagram",
    "Instance",
    "InstanceNotFound",
    "InstanceNotRunning",
    "Lab",
    "LabError",
    "LabNotReady",
    "LabNotRunning",
    "LabStartFailed",
    "LabStatus",
    "QuestionNotFound",
    "ResourceNotFound",
    "Transcript",
    "connect",
    "diagram",
    "down",
    "policy_table",
    "quiz",
    "up",
]
