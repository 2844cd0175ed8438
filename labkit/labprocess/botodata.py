"""botocore's data files (service models, endpoints), read once per process.

botocore caches what it reads per session; a process that makes many sessions (moto makes one per
backend and three more when its EC2 models are imported; the warm `aws` server makes one per
command) reads and decodes the same JSON again each time. The files belong to the installed
package and do not change while the process runs, so one decoded copy serves every session.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any


def read_once(loaders: ModuleType) -> None:
    """Make `loaders` (a `botocore.loaders` module: the lab's, or awscli's own) decode each file once.

    Everything else stays as botocore does it: a file that is gone is not found, and every load is
    logged as it would be (`aws --debug` shows the same "Loading JSON file" lines).
    """
    load = loaders.JSONFileLoader._load_file
    decoded: dict[str, Any] = {}

    def _load_file(self: Any, full_path: str, open_method: Any) -> Any:
        if full_path not in decoded:
            data = load(self, full_path, open_method)
            if data is not None:
                decoded[full_path] = data
            return data
        if not os.path.isfile(full_path):
            return None
        loaders.logger.debug("Loading JSON file: %s", full_path)
        return decoded[full_path]

    setattr(loaders.JSONFileLoader, "_load_file", _load_file)  # noqa: B010 - a patch, said plainly
