"""The class page and every student's lab API on JupyterHub: the one config fragment a hub admin copies.

Load it at the END of your jupyterhub_config.py (it adds to what is there, it replaces nothing):

    load_subconfig("/path/to/labkit_class.py")      # or, where `c` is in scope: exec(open(path).read())

What it sets up:

- in each student's single-user server, labkit's server extension (labkit/classroom/server_extension.py):
  `/user/NAME/labkit/api/status` (GET: what `labkit status --json` says) and `/user/NAME/labkit/api/reset`
  (POST `{"to": "04"}` or `{}`: `labkit reset --yes [--to 04]`), on that user's own lab. JupyterHub's own
  single-user auth admits the owner and holders of `access:servers` on that server, nobody else;
- the class page, a JupyterHub service run by the hub at `/services/class/` (labkit/classroom/class_page.py):
  every member of the CLASS_GROUP, their progress per notebook, their lab's state, a reset button; CSV;
- the roles, least privilege (below). JupyterHub's default `user` role is only `self` (checked on
  JupyterHub 5.x and 6.x), so students get no access to the page: keep `access:services` out of
  `c.JupyterHub.extra_user_scopes` and out of any role of theirs.

A student's server runs the student's code, so whatever reaches it, the student may keep. The page's own
token therefore never goes there: for each request to a student's server, the page has the hub make a
token owned by that student, for that server alone (`access:servers!server=NAME/`), living 60 s at most,
and deletes it once answered. Kept, it is worth what the student already has. The hub lets the page
make such tokens (`tokens!group=…`) only with scopes their owner holds (checked on JupyterHub 6.1). It needs
JupyterHub 5.5.3 or later on 5.x, 6.1.0 or later on 6.x: before, the hub checked a service's `!group=`
filter on `tokens` against the wrong kind of thing and answered 403 (apihandlers/users.py, read in the
releases 5.4.4 to 6.1.1); on an older hub, its log says so at start (makes_student_tokens below).

Who is in which group: list them with `c.JupyterHub.load_groups` (or your authenticator's groups), e.g.
`c.JupyterHub.load_groups = {"class": {"users": ["ana", "ben"]}, "instructors": {"users": ["ines"]}}`.
JupyterHub creates both groups, empty, if you do not.

Where things listen, by environment variable of the hub's process (defaults: one host; Kubernetes):
  LABKIT_CLASS_SERVICE_URL  where the hub's proxy reaches the class page
                            (default http://127.0.0.1:10101; on Zero to JupyterHub http://hub:10101)
  LABKIT_CLASS_PROXY_URL    where the class page reaches students' servers: the proxy's own http address
                            (default http://127.0.0.1:8000; on Zero to JupyterHub the proxy-http or
                            proxy-public service, from Kubernetes' PROXY_HTTP_* / PROXY_PUBLIC_* variables)
  LABKIT_CLASS_TIMEOUT      seconds the page waits for each student's server (default 3)
"""

import os
import sys

import jupyterhub

CLASS_GROUP = "class"  # the students whose labs the page shows and resets
INSTRUCTOR_GROUP = "instructors"  # who may open the page
SERVICE_NAME = "class"  # the page is at /services/class/
SERVICE_PORT = 10101


def makes_student_tokens(version: tuple[int, ...]) -> bool:
    """Whether JupyterHub `version` makes a service tokens for the users of a group it holds `tokens!group=`
    on (5.5.3 and 6.1.0 fixed it: before, the hub checked that filter against the service itself)."""
    return (5, 5, 3) <= version < (6,) or version >= (6, 1, 0)


if not makes_student_tokens(tuple(jupyterhub.version_info[:3])):
    print(
        f"labkit_class.py: JupyterHub {jupyterhub.__version__} refuses the class page the students' tokens it needs "
        "(HTTP 403), so each row of the page will say error: upgrade the hub to JupyterHub 5.5.3 or later "
        "(6.1.0 or later on 6.x), as deploy/image/hub.Dockerfile does.",
        file=sys.stderr,
    )


def _on_kubernetes_service(*names: str) -> str | None:
    """http://HOST:PORT of the first Kubernetes service (by its environment variables) that exists."""
    for name in names:
        host, port = os.environ.get(f"{name}_SERVICE_HOST"), os.environ.get(f"{name}_SERVICE_PORT")
        if host and port:
            return f"http://{host}:{port}"
    return None


SERVICE_URL = os.environ.get("LABKIT_CLASS_SERVICE_URL") or (
    f"http://hub:{SERVICE_PORT}" if "HUB_SERVICE_HOST" in os.environ else f"http://127.0.0.1:{SERVICE_PORT}"
)
PROXY_URL = (
    os.environ.get("LABKIT_CLASS_PROXY_URL")
    or _on_kubernetes_service("PROXY_HTTP", "PROXY_PUBLIC")
    or "http://127.0.0.1:8000"
)

c = get_config()  # noqa: F821 - given by JupyterHub's config loader (also with load_subconfig)

# Every student's server loads labkit's extension (the lab API above). Keep JupyterLab and the rest.
c.Spawner.args.append("--ServerApp.jpserver_extensions=labkit.classroom.server_extension=True")

c.JupyterHub.services.append(
    {
        "name": SERVICE_NAME,
        "display": True,  # listed in the hub's Services menu, for whoever may open it
        "url": SERVICE_URL,
        "command": [sys.executable, "-m", "labkit.classroom.class_page"],
        "oauth_no_confirm": True,  # instructors are not asked to authorize the hub's own page
        "environment": {
            "LABKIT_CLASS_GROUP": CLASS_GROUP,
            "LABKIT_CLASS_PROXY_URL": PROXY_URL,
            "LABKIT_CLASS_TIMEOUT": os.environ.get("LABKIT_CLASS_TIMEOUT", "3"),
        },
    }
)

c.JupyterHub.load_roles.extend(
    [
        {
            # The page's own token (JUPYTERHUB_API_TOKEN), for the hub's API alone: the class group's users,
            # their servers, and tokens of theirs for their own servers. No access to any server itself.
            "name": "labkit-class-page",
            "description": "The class page: list the class's students and their servers, make tokens for their lab API",
            "scopes": [
                f"list:users!group={CLASS_GROUP}",  # GET /hub/api/users answers the class's members only, by name
                f"read:users:groups!group={CLASS_GROUP}",  # that they are in the class (a broader token adds none)
                f"read:users:activity!group={CLASS_GROUP}",  # their last activity
                f"read:servers!group={CLASS_GROUP}",  # whether their server runs, is pending, and its URL
                f"tokens!group={CLASS_GROUP}",  # POST/DELETE /hub/api/users/NAME/tokens: NAME's own, short-lived
            ],
            "services": [SERVICE_NAME],
        },
        {
            # Instructors: open the page (which acts for them), and nothing on students' servers.
            "name": "labkit-class-instructor",
            "description": "Open the class page: every student's lab, reset any of them",
            "scopes": [f"access:services!service={SERVICE_NAME}"],
            "groups": [INSTRUCTOR_GROUP],
        },
    ]
)
