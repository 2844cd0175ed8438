"""The class page: a JupyterHub service that shows every student of the class group, their server,
their lab and their progress per notebook, and resets their labs.

    python -m labkit.classroom.class_page        # run by the hub (deploy/jupyterhub/labkit_class.py)

    GET  {prefix}             the table (instructors log in through the hub: OAuth)
    GET  {prefix}class.csv    the same, as CSV
    POST {prefix}reset        student=NAME… (or one=NAME), to=fresh|01…07, _xsrf: reset those labs

Configured by the hub's environment for services (JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN,
JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_SERVICE_URL) and by LABKIT_CLASS_GROUP, LABKIT_CLASS_PROXY_URL
and LABKIT_CLASS_TIMEOUT. Who may open it is the hub's to say (`access:services!service=…`): the hub
refuses everyone else (403). A reset made with the instructor's cookie must carry the page's XSRF token.
The page's own token never leaves for a student's server (gather.py): each request there carries a
token of that student's own, for their server alone, made for it and deleted after.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from labkit.catalogue import NOTEBOOKS
from labkit.classroom.gather import Hub, ResetDone, StudentLab, gather, reset
from labkit.classroom.page import class_csv, class_html, row
from labkit.errors import ClassNotListed, LabError

log = logging.getLogger("labkit.class_page")
FRESH = "fresh"
CHECKPOINTS = [(FRESH, "a fresh lab")] + [(n, f"{n}: ready for {NOTEBOOKS[n]}") for n in NOTEBOOKS if n != "00"]


@dataclass(frozen=True)
class ClassConfig:
    group: str
    timeout: float  # seconds each student's server has to answer
    hub: Hub


def config_from(environ: dict[str, str] | os._Environ[str]) -> ClassConfig:
    """The page's settings, from the environment the hub gives its services."""
    hub = Hub.connect(
        environ["JUPYTERHUB_API_URL"],
        environ["JUPYTERHUB_API_TOKEN"],
        environ.get("LABKIT_CLASS_PROXY_URL", "http://127.0.0.1:8000"),
    )
    return ClassConfig(environ.get("LABKIT_CLASS_GROUP", "class"), float(environ.get("LABKIT_CLASS_TIMEOUT", "3")), hub)


class ClassHandler(HubOAuthenticated, web.RequestHandler):
    """What every page of the service shares: the class's settings, the students' rows."""

    @property
    def config(self) -> ClassConfig:
        return self.settings["labkit_class"]  # type: ignore[no-any-return]

    async def students(self) -> tuple[list[StudentLab], float]:
        began = time.perf_counter()
        try:
            students = await gather(self.config.hub, self.config.group, timeout=self.config.timeout)
        except ClassNotListed as error:
            raise web.HTTPError(502, str(error)) from None
        return students, time.perf_counter() - began

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """One line, never a traceback: what went wrong in the page's own words, where it has some."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        said = error.log_message if isinstance(error, web.HTTPError) and error.log_message else self._reason
        if isinstance(error, LabError):
            said = str(error)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(f"{status_code}: {said}\n")

    def render_class(self, students: Sequence[StudentLab], seconds: float, done: Sequence[ResetDone] = ()) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                        "script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")  # fmt: skip
        self.finish(
            class_html(
                [row(s) for s in students],
                group=self.config.group,
                timeout=self.config.timeout,
                xsrf=self.xsrf_token.decode(),
                notebooks=list(NOTEBOOKS),
                checkpoints=CHECKPOINTS,
                done=done,
                seconds=seconds,
            )
        )


class PageHandler(ClassHandler):
    @web.authenticated
    async def get(self) -> None:
        self.render_class(*await self.students())


class CsvHandler(ClassHandler):
    @web.authenticated
    async def get(self) -> None:
        students, _ = await self.students()
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{self.config.group}-labs.csv"')
        self.finish(class_csv([row(s) for s in students], notebooks=list(NOTEBOOKS)))


class ResetHandler(ClassHandler):
    @web.authenticated
    async def post(self) -> None:
        one = self.get_body_argument("one", None)
        names = [one] if one else self.get_body_arguments("student")
        to = self.get_body_argument("to", FRESH)
        if to not in dict(CHECKPOINTS):
            raise web.HTTPError(400, f"No checkpoint {to!r}; the checkpoints are {', '.join(dict(CHECKPOINTS))}.")
        if not names:
            raise web.HTTPError(400, "No student selected: tick a row, or use its own Reset button.")
        students, _ = await self.students()
        known = {s.name: s for s in students}
        chosen = [known[n] for n in names if n in known]
        strangers = [ResetDone(n, False, f"not a student of {self.config.group}") for n in names if n not in known]
        user: dict[str, Any] = self.current_user  # type: ignore[assignment]
        log.info("%s resets %s to %s", user["name"], ", ".join(names), to)
        done = await reset(self.config.hub, chosen, to=None if to == FRESH else to)
        self.render_class(*await self.students(), done=[*done, *strangers])


def application(config: ClassConfig, prefix: str) -> web.Application:
    """The service's tornado application, under the hub's prefix for it (/services/class/)."""
    return web.Application(
        [
            (prefix, PageHandler),
            (url_path_join(prefix, "class.csv"), CsvHandler),
            (url_path_join(prefix, "reset"), ResetHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (prefix.rstrip("/"), web.RedirectHandler, {"url": prefix}),
        ],
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,  # with JupyterHub's own tokens (HubAuthenticated.xsrf_token): no cross-site resets
        labkit_class=config,
    )


def bind_address(url: str) -> tuple[str, int]:
    """Where to listen for JUPYTERHUB_SERVICE_URL: its own address when it is an IP address or
    localhost; every interface when it is a name (`http://hub:10101` names a Kubernetes service)."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or 80
    if host == "localhost":
        return "127.0.0.1", port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "", port
    return host, port


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s class] %(message)s")
    config = config_from(os.environ)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/class/")
    address, port = bind_address(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    application(config, prefix).listen(port, address=address, xheaders=True)
    log.info("class page for group %s at %s on %s:%s", config.group, prefix, address or "*", port)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
