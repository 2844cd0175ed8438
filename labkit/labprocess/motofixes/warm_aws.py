"""The changes to botocore in the warm `aws` server (cliserver.py): work each command's new session
repeats, done once. Each is a record in registry.py, applied by `apply(CLI)` in that server only; what
a command prints and logs stays byte for byte what a fresh `aws` process gives.
"""

from __future__ import annotations

import os
from typing import Any

CLI_DATA_DIRS: set[str] = set()  # the installed packages' data directories, noted by cliserver.warm


def service_lists_remembered() -> None:
    """Which services botocore's data directories hold, listed once per set of directories when
    every directory searched belongs to the installed packages; a command's own ~/.aws/models or
    AWS_DATA_PATH, if it has any, is listed afresh each time."""
    from botocore import loaders

    listed = loaders.Loader.list_available_services
    services: dict[tuple[Any, ...], Any] = {}

    def list_available_services(self: Any, type_name: str) -> Any:
        searched = tuple(path for path in self.search_paths if os.path.isdir(path))
        if not set(searched) <= CLI_DATA_DIRS:
            return listed(self, type_name)
        if (searched, type_name) not in services:
            services[(searched, type_name)] = listed(self, type_name)
        return list(services[(searched, type_name)])

    setattr(loaders.Loader, "list_available_services", list_available_services)  # noqa: B010


def event_names_aliased_once() -> None:
    """Each event's name after aliasing, worked out once per process rather than once per session
    (each command's new session registers about 390 handlers); what `--debug` logs stays the same."""
    from botocore import hooks

    aliases, logger = hooks.EVENT_ALIASES, hooks.logger
    alias_of = hooks.EventAliaser._alias_event_name
    aliased: dict[str, str] = {}

    def _alias_event_name(self: Any, event_name: str) -> str:
        if event_name in self._alias_name_cache or self._event_aliases is not aliases:
            return alias_of(self, event_name)
        if event_name not in aliased:
            aliased[event_name] = alias_of(self, event_name)  # logs the change, as for any new session
        elif aliased[event_name] != event_name:
            logger.debug("Changing event name from %s to %s", event_name, aliased[event_name])
        self._alias_name_cache[event_name] = aliased[event_name]
        return aliased[event_name]

    setattr(hooks.EventAliaser, "_alias_event_name", _alias_event_name)  # noqa: B010


def handler_signatures_read_once() -> None:
    """Whether a handler takes **kwargs (botocore asks `inspect` each time one is registered),
    remembered per function across sessions."""
    from botocore import hooks

    accepts_kwargs = hooks.accepts_kwargs
    takes_kwargs: dict[Any, Any] = {}

    def remembered_accepts_kwargs(func: Any) -> Any:
        key = getattr(func, "__func__", func)  # a bound method takes what its function takes
        try:
            return takes_kwargs[key]
        except KeyError:
            takes_kwargs[key] = accepts_kwargs(func)
            return takes_kwargs[key]
        except TypeError:  # not hashable: work it out each time
            return accepts_kwargs(func)

    setattr(hooks, "accepts_kwargs", remembered_accepts_kwargs)  # noqa: B010
