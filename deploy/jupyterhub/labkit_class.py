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

CLASS_GROUP = "class"  # the students whose labs the page shows and resets
INSTRUCTOR_GROUP = "instructors"  # who may open the page
SERVICE_NAME = "class"  # the page is at /services/class/
SERVICE_PORT = 10101


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

# A single-user server checks a token's scopes without the hub's database, so it cannot tell that its
# user is in the class group: `access:servers!group=class` alone is refused there (JupyterHub documents
# this in jupyterhub.services.auth.check_scopes, 5.x and 6.x). The servers of the class's students
# therefore also accept that exact scope; the hub decides who holds it (the page's role, below).
# Membership is read when a server starts: a student added to the group restarts their server.
c.Spawner.group_overrides.update(
    {
        "labkit-class-access": {
            "groups": [CLASS_GROUP],
            "spawner_override": {
                "oauth_access_scopes": lambda spawner: [
                    *spawner.oauth_access_scopes,
                    f"access:servers!group={CLASS_GROUP}",
                ],
            },
        }
    }
)

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
            # The page's own token (JUPYTERHUB_API_TOKEN): the class group's users and servers, nothing else.
            "name": "labkit-class-page",
            "description": "The class page: list the class's students, their servers, and use their lab API",
            "scopes": [
                f"list:users!group={CLASS_GROUP}",  # GET /hub/api/users answers the class's members only
                f"read:users:name!group={CLASS_GROUP}",  # their names
                f"read:users:activity!group={CLASS_GROUP}",  # their last activity
                f"read:servers!group={CLASS_GROUP}",  # whether their server runs, is pending, and its URL
                f"access:servers!group={CLASS_GROUP}",  # their /user/NAME/labkit/api/status and /reset
            ],
            "services": [SERVICE_NAME],
        },
        {
            # Instructors: open the page (which acts with its own token), and nothing on students' servers.
            "name": "labkit-class-instructor",
            "description": "Open the class page: every student's lab, reset any of them",
            "scopes": [f"access:services!service={SERVICE_NAME}"],
            "groups": [INSTRUCTOR_GROUP],
        },
    ]
)
