"""A class hub on one machine: students and instructors are the host's own Unix users, each server runs
as its user, and each lab lives in that user's home. Installed by `make install-hub` (as root) into
/opt/iam-roles-for-ec2/etc/jupyterhub/, beside labkit_class.py; run as root:

    /opt/iam-roles-for-ec2/bin/jupyterhub -f /opt/iam-roles-for-ec2/etc/jupyterhub/jupyterhub_config.py

Who is who, by Unix group (the hub reads them when it starts; restart it after a change):
    groupadd class; groupadd instructors
    useradd -m -G class ana                      # a student: passwd ana
    useradd -m -G instructors ines               # an instructor; the class page is at /services/class/
Students log in at http://HOST:8000 with their Unix name and password (PAM). Put TLS in front of it
for a class on a network (c.JupyterHub.ssl_key / ssl_cert below, or a reverse proxy).
"""

import grp
import os
import pwd
import shutil
from pathlib import Path

c = get_config()  # noqa: F821 - given by JupyterHub's config loader

PREFIX = Path(os.environ.get("LABKIT_PREFIX", "/opt/iam-roles-for-ec2"))  # `make install-hub PREFIX=…`
HERE = Path(__file__).resolve().parent
CLASS_UNIX_GROUP, INSTRUCTORS_UNIX_GROUP = "class", "instructors"


def unix_group_members(name: str) -> list[str]:
    """The users of a Unix group: its listed members and those whose primary group it is."""
    try:
        group = grp.getgrnam(name)
    except KeyError:
        return []
    primary = [p.pw_name for p in pwd.getpwall() if p.pw_gid == group.gr_gid]
    return sorted(set(group.gr_mem) | set(primary))


c.JupyterHub.bind_url = "http://:8000"
# c.JupyterHub.ssl_key = "/etc/ssl/private/hub.key"; c.JupyterHub.ssl_cert = "/etc/ssl/certs/hub.pem"
# (with TLS, the class page reaches servers at https://127.0.0.1:8000: set LABKIT_CLASS_PROXY_URL)
c.JupyterHub.data_files_path = str(PREFIX / "share" / "jupyterhub")
c.JupyterHub.db_url = "sqlite:////var/lib/iam-roles-for-ec2-hub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/var/lib/iam-roles-for-ec2-hub/jupyterhub_cookie_secret"
Path("/var/lib/iam-roles-for-ec2-hub").mkdir(mode=0o700, exist_ok=True)
c.ConfigurableHTTPProxy.command = [str(PREFIX / "node_modules" / ".bin" / "configurable-http-proxy")]

# Unix users, by password (PAM); only the class's students and its instructors may log in.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(unix_group_members(CLASS_UNIX_GROUP) + unix_group_members(INSTRUCTORS_UNIX_GROUP))
c.JupyterHub.load_groups = {
    "class": {"users": unix_group_members(CLASS_UNIX_GROUP)},
    "instructors": {"users": unix_group_members(INSTRUCTORS_UNIX_GROUP)},
}


def copy_the_notebooks(spawner) -> None:  # type: ignore[no-untyped-def]
    """A student's own copy of the notebooks, ~/iam-roles-for-ec2, made once, owned by them."""
    user = pwd.getpwnam(spawner.user.name)
    mine = Path(user.pw_dir) / "iam-roles-for-ec2"
    if not mine.exists():
        shutil.copytree(PREFIX / "notebooks", mine)
        for path in [mine, *mine.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)


# Each server runs as its Unix user, from the shared install, with the lab's `labkit` and `aws` first on
# PATH (as `make lab` has them); each lab in the user's own ~/.local/state/labkit.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(PREFIX / "bin" / "jupyterhub-singleuser")]
c.Spawner.environment = {"PATH": f"{PREFIX}/bin:/usr/local/bin:/usr/bin:/bin"}
c.Spawner.pre_spawn_hook = copy_the_notebooks
c.Spawner.default_url = "/lab/tree/iam-roles-for-ec2/00-welcome.ipynb"

# The class page and every student's lab API, with their roles.
load_subconfig(str(HERE / "labkit_class.py"))  # noqa: F821 - given by JupyterHub's config loader
