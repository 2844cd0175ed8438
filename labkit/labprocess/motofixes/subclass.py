"""The first seam: the lab's subclasses of moto's IAM and EC2 backends, installed once.

A fix that changes what a backend method does is a mixin class here-abouts (fidelity.py holds them);
its record's `apply` only adds the mixin (`add`). After every record is applied, `install` builds
one subclass per service from the mixins added (`LabIAMBackend(mixins…, IAMBackend)`) and makes it
the class moto's BackendDict instantiates for every account and region, before any exists. moto's
own classes are never changed, and a fix that is not applied simply adds no mixin.

Why a seam: a reset (`moto_api_backend.reset()`) builds new backends from `BackendDict.backend`,
so the subclass survives resets, and moto's internal calls (`self.get_role`, …) reach the mixins
as any subclass's override.
"""

from __future__ import annotations

import importlib
from typing import Any

# service: (the module of moto's backends, the BackendDict in it, the backend class it holds)
BACKENDS = {
    "iam": ("moto.iam.models", "iam_backends", "IAMBackend"),
    "ec2": ("moto.ec2.models", "ec2_backends", "EC2Backend"),
}

_mixins: dict[str, list[type]] = {service: [] for service in BACKENDS}
_installed: dict[str, type] = {}


def add(service: str, mixin: type) -> None:
    """Make `mixin` part of the lab's subclass of `service`'s backend (before `install`)."""
    if service in _installed:
        raise RuntimeError(f"the lab's {service} backend is already installed; {mixin.__name__} came too late")
    if mixin not in _mixins[service]:
        _mixins[service].append(mixin)


def install() -> dict[str, type]:
    """Build each service's subclass from the mixins added and install it in moto's BackendDict;
    returns the classes installed. Once per process, before any backend of the service exists."""
    for service, mixins in _mixins.items():
        if not mixins or service in _installed:
            continue
        module_name, dict_name, class_name = BACKENDS[service]
        module = importlib.import_module(module_name)
        backends: Any = getattr(module, dict_name)
        base: type = getattr(module, class_name)
        if len(backends):
            raise RuntimeError(f"moto's {service} backends were made before the lab's subclass was installed")
        # moto finds a service's urls module from its backend class's module: keep moto's
        lab_class = type(f"Lab{class_name}", (*mixins, base), {"__module__": base.__module__})
        backends.backend = lab_class  # the class BackendDict instantiates (moto.core.base_backend)
        _installed[service] = lab_class
    return dict(_installed)


def installed_class(service: str) -> type:
    """The lab's subclass of `service`'s backend (how a snapshot names it: labkit.labprocess.snapshot)."""
    return _installed[service]
