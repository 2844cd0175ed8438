"""labkit's Jupyter server extension: the lab of the server's own user, over HTTP.

    GET  {base_url}labkit/api/status             what `labkit status --json` says
    POST {base_url}labkit/api/reset  {"to": "04"}   what `labkit reset --yes --to 04` does ({}: a fresh lab)

Enable it with `--ServerApp.jpserver_extensions=labkit.classroom.server_extension=True`
(deploy/jupyterhub/labkit_class.py does, for every server the hub spawns). The lab is the one of this
server's `$LABKIT_HOME`, so each student's server acts on that student's lab only. Who may call it is
the server's own authentication: inside JupyterHub, the server's owner and holders of `access:servers`
on it; with a token, whoever holds the token. The class page calls it with a token the hub made for it,
owned by the student and for this server alone (labkit/classroom/gather.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from labkit.catalogue import CHALLENGE, NOTEBOOKS, checkpoint
from labkit.errors import LabError
from labkit.lesson import connect
from labkit.report import status_report
from labkit.solutions import before
from labkit.statedir import lab_home

AUTH_RESOURCE = "labkit"  # what jupyter_server's authorizer is asked about


def reset_lab(home: Path, to: str | None) -> dict[str, Any]:
    """`labkit reset --yes [--to NN]` on the lab of `home` (started if it is not running): what was
    done, in the command's own words, and the lab's status after."""
    lab = connect(home)
    if to is None:
        seconds = lab.reset()
        said = f"Reset the lab to a freshly bootstrapped one in {seconds:.2f} s."
    else:
        seconds = lab.reset(to=to, say=False)
        done = f"replayed notebooks {', '.join(before(to))}" if before(to) else "nothing to replay"
        done += ", then set the challenge's scene" if to == CHALLENGE else ""
        said = f"Reset the lab to checkpoint {to} (ready for {NOTEBOOKS[to]}; {done}) in {seconds:.2f} s."
    return {"reset": to or "fresh", "seconds": round(seconds, 3), "said": said, "status": status_report(home)}


def requested_checkpoint(body: bytes) -> str | None:
    """The checkpoint a reset's body asks for: `{"to": "04"}` (or 4), None for `{}` or `{"to": null}`.
    Anything else raises ValueError, or CheckpointNotFound naming the checkpoints there are."""
    try:
        asked = json.loads(body or b"{}")
    except ValueError:
        raise ValueError('The body is not JSON; send {"to": "04"}, or {} for a fresh lab.') from None
    if not isinstance(asked, dict) or set(asked) - {"to"}:
        raise ValueError(f'Expected {{"to": "NN"}} or {{}}, not {json.dumps(asked)[:100]}.')
    to = asked.get("to")
    if to is None:
        return None
    if not isinstance(to, str | int) or isinstance(to, bool):
        raise ValueError(f'"to" names a notebook ("04"), not {json.dumps(to)[:100]}.')
    return checkpoint(to)


class LabHandler(APIHandler):
    """What both endpoints share: the lab of this server's `$LABKIT_HOME`, one reset at a time."""

    auth_resource = AUTH_RESOURCE
    resetting = asyncio.Lock()  # per server process: two resets of one lab never interleave

    @property
    def home(self) -> Path:
        return lab_home()


class StatusHandler(LabHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        report = await asyncio.get_running_loop().run_in_executor(None, status_report, self.home)
        self.finish(json.dumps(report))


class ResetHandler(LabHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            to = requested_checkpoint(self.request.body)
        except (ValueError, LabError) as error:
            raise web.HTTPError(400, str(error)) from None
        async with self.resetting:
            try:
                done = await asyncio.get_running_loop().run_in_executor(None, reset_lab, self.home, to)
            except LabError as error:  # the lab could not start, …: the command's own message
                raise web.HTTPError(500, str(error)) from None
        self.log.info("labkit: %s (asked by %s)", done["said"], self.current_user.username)
        self.finish(json.dumps(done))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labkit.classroom.server_extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "labkit/api/status"), StatusHandler),
            (url_path_join(base, "labkit/api/reset"), ResetHandler),
        ],
    )
    serverapp.log.info("labkit: the lab of %s answers at %slabkit/api/status and /reset", lab_home(), base)
