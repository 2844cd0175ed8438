"""labkit: an offline lab for learning IAM roles for EC2.

    import labkit
    lab = labkit.connect()                      # starts the lab in the background if needed
    iam = lab.client("iam")                     # boto3, acting as the person in the console
    lab.instance("demo-instance").run("aws iam list-users")   # the real aws CLI, on the instance

moto plays AWS on loopback with IAM authorization on; labkit adds what moto lacks: each
instance's Instance Metadata Service, and a sealed shell per instance.
"""

from labkit.errors import InstanceNotFound, InstanceNotRunning, LabError, LabNotRunning, LabStartFailed
from labkit.instances import CommandResult, Instance
from labkit.lab import Lab, LabStatus, connect, down, up

__all__ = [
    "CommandResult",
    "Instance",
    "InstanceNotFound",
    "InstanceNotRunning",
    "Lab",
    "LabError",
    "LabNotRunning",
    "LabStartFailed",
    "LabStatus",
    "connect",
    "down",
    "up",
]
