"""A class hub to try on one machine, with no Unix users: three students and one instructor who log in
with one shared password, every user's home (and lab) in a directory of their own under LABKIT_DEMO_DIR.
tests/test_classroom.py runs exactly this hub. For a real class, use jupyterhub_config.py beside it.

    LABKIT_DEMO_PASSWORD=choose-one .venv/bin/jupyterhub -f deploy/jupyterhub/demo_config.py

then open http://127.0.0.1:8000 and log in as `ines` (the instructor: Services → class) or as a student
(`ana`, `ben`, `cleo`). It needs configurable-http-proxy (`make hub-proxy` puts it in node_modules/).

Everything listens on loopback. Settings, by environment variable (defaults in brackets):
  LABKIT_DEMO_PASSWORD   everyone's password, at least 8 characters (required)
  LABKIT_DEMO_DIR        the users' homes, DIR/NAME [./class-homes]; each lab in DIR/NAME/lab
  LABKIT_DEMO_STUDENTS   the students, comma-separated [ana,ben,cleo]; LABKIT_DEMO_INSTRUCTORS [ines]
  LABKIT_HUB_PORT        the hub's public port [8000]; the hub's API, the proxy's API and the class
                         page listen on the next three ports (8001: the hub, 8002: the proxy, 8003: class)
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - given by JupyterHub's config loader

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the environment the hub runs from, labkit and jupyterhub in it
PASSWORD = os.environ.get("LABKIT_DEMO_PASSWORD", "")
if len(PASSWORD) < 8:
    sys.exit("demo_config.py: set LABKIT_DEMO_PASSWORD to the users' shared password (8 characters or more).")
HOMES = Path(os.environ.get("LABKIT_DEMO_DIR", "class-homes")).absolute()
STUDENTS = [n for n in os.environ.get("LABKIT_DEMO_STUDENTS", "ana,ben,cleo").split(",") if n]
INSTRUCTORS = [n for n in os.environ.get("LABKIT_DEMO_INSTRUCTORS", "ines").split(",") if n]
PORT = int(os.environ.get("LABKIT_HUB_PORT", "8000"))

c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{PORT + 1}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PORT + 2}"
proxy = HERE.parent.parent / "node_modules" / ".bin" / "configurable-http-proxy"  # `make hub-proxy`
c.ConfigurableHTTPProxy.command = [str(proxy) if proxy.exists() else "configurable-http-proxy"]

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = PASSWORD
c.Authenticator.allowed_users = set(STUDENTS + INSTRUCTORS)
c.JupyterHub.load_groups = {"class": {"users": STUDENTS}, "instructors": {"users": INSTRUCTORS}}

# Every user's server runs as the hub's own user, with a home of its own and the lab in it.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{HOMES}/{{username}}"
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.environment = {
    "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",  # the lab's `labkit` and `aws` first, as `make lab` has them
    "LABKIT_HOME": lambda spawner: f"{HOMES}/{spawner.user.name}/lab",
}
c.Spawner.env_keep = ["PYTHONPATH", "LANG", "LC_ALL", "LABKIT_CHROMIUM"]  # a checkout's labkit, when run from one
c.Spawner.http_timeout = 60
if os.geteuid() == 0:  # CI runs as root; a real class's servers run as their users (jupyterhub_config.py)
    c.Spawner.args = ["--allow-root"]

# The class page and the lab API, with their roles: the fragment a real hub loads too.
os.environ.setdefault("LABKIT_CLASS_SERVICE_URL", f"http://127.0.0.1:{PORT + 3}")
os.environ.setdefault("LABKIT_CLASS_PROXY_URL", f"http://127.0.0.1:{PORT}")
load_subconfig(str(HERE / "labkit_class.py"))  # noqa: F821 - given by JupyterHub's config loader
