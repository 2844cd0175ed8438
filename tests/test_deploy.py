"""deploy/: what can be checked of a class hub without Kubernetes (docs/instructors.md).

The Zero to JupyterHub values file parses, uses only keys the chart knows, carries the one config
fragment (deploy/jupyterhub/labkit_class.py) byte for byte, and the hub config it makes loads in
JupyterHub: JupyterHub's own start-up (`JupyterHub.initialize`, in a process of its own, with a
database in a temporary directory) validates the service, the roles' scopes and the groups, exactly
as a hub pod would. The one-host config loads the same way. The pods allow the kernel seal and keep
each lab on a volume; the images pin their base and install the tested versions; the guide's files exist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "deploy" / "z2jh" / "values.yaml"
FRAGMENT = ROOT / "deploy" / "jupyterhub" / "labkit_class.py"
ONE_HOST = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
IMAGES = {"students": ROOT / "deploy" / "image" / "Dockerfile", "hub": ROOT / "deploy" / "image" / "hub.Dockerfile"}
CLASS_PAGE = "labkit.classroom.class_page"
SERVER_EXTENSION = "labkit.classroom.server_extension"

# The keys of the chart's values schema (jupyterhub/values.schema.yaml, chart 4.x) under what this file
# sets: the chart refuses any other (`additionalProperties: false`), and so would `helm install`.
CHART_KEYS = {
    "": {"hub", "proxy", "singleuser", "scheduling", "ingress", "prePuller", "cull", "debug", "rbac", "global"},
    "hub": {
        "config", "extraFiles", "baseUrl", "command", "args", "cookieSecret", "image", "networkPolicy", "db",
        "labels", "initContainers", "extraEnv", "extraConfig", "service", "pdb", "existingSecret",
        "nodeSelector", "tolerations", "activeServerLimit", "allowNamedServers", "annotations",
        "authenticatePrometheus", "concurrentSpawnLimit", "consecutiveFailureLimit", "podSecurityContext",
        "containerSecurityContext", "deploymentStrategy", "extraContainers", "extraVolumeMounts",
        "extraVolumes", "livenessProbe", "readinessProbe", "namedServerLimitPerUser", "redirectToServer",
        "resources", "lifecycle", "services", "loadRoles", "shutdownOnLogout", "templatePaths",
        "templateVars", "serviceAccount", "extraPodSpec", "revisionHistoryLimit",
    },
    "hub.service": {"type", "ports", "annotations", "extraPorts", "loadBalancerIP"},
    "hub.networkPolicy": {
        "enabled", "ingress", "egress", "egressAllowRules", "interNamespaceAccessLabels", "allowedIngressPorts",
    },
    "singleuser": {
        "networkPolicy", "podNameTemplate", "cpu", "memory", "image", "initContainers", "profileList",
        "extraFiles", "extraEnv", "nodeSelector", "extraTolerations", "extraNodeAffinity", "extraPodAffinity",
        "extraPodAntiAffinity", "cloudMetadata", "cmd", "defaultUrl", "events", "extraAnnotations",
        "extraContainers", "extraLabels", "extraPodConfig", "extraResource", "fsGid", "lifecycleHooks",
        "networkTools", "serviceAccountName", "startTimeout", "storage", "allowPrivilegeEscalation", "uid",
    },
    "singleuser.storage": {
        "capacity", "dynamic", "extraLabels", "extraVolumeMounts", "extraVolumes", "homeMountPath", "static", "type",
    },
}  # fmt: skip

# Loads a hub config as JupyterHub does when it starts (the database in a temporary directory), with
# DummyAuthenticator so that no account need exist on this machine, and prints what it made as JSON.
LOAD = r"""
import asyncio, json, sys
from jupyterhub import orm
from jupyterhub.app import JupyterHub
from jupyterhub.utils import maybe_future

config, state, names = sys.argv[1], sys.argv[2], sys.argv[3:]


def spawner_args(config):
    args = config.Spawner.args if "args" in config.Spawner else []
    return list(args.get_value([]) if hasattr(args, "get_value") else args)  # appended to, or set


async def main():
    app = JupyterHub()
    await app.initialize([
        f"--config={config}", f"--JupyterHub.db_url=sqlite:///{state}/jupyterhub.sqlite",
        f"--JupyterHub.cookie_secret_file={state}/cookie_secret", f"--JupyterHub.pid_file={state}/pid",
        "--JupyterHub.authenticator_class=dummy",
    ])
    roles = {
        role.name: {
            "scopes": sorted(role.scopes),
            "services": sorted(s.name for s in role.services),
            "groups": sorted(g.name for g in role.groups),
        }
        for role in app.db.query(orm.Role)
    }
    allowed = {name: bool(await maybe_future(app.authenticator.check_allowed(name, None))) for name in names}
    print(json.dumps({
        "services": [{k: v for k, v in s.items() if k != "api_token"} for s in app.services],
        "roles": roles,
        "groups": {g.name: sorted(u.name for u in g.users) for g in app.db.query(orm.Group)},
        "spawner_args": spawner_args(app.config),
        "allowed": allowed,
    }))


asyncio.run(main())
"""

# What the chart's own jupyterhub_config.py does with the values, in its order: hub.services and
# hub.loadRoles as lists, then hub.config, then each hub.extraConfig in the order of its key.
CHART_CONFIG = """
import json
values = json.loads({values!r})
c.JupyterHub.services = [dict(s, name=s.get("name", n)) for n, s in values["hub"].get("services", {{}}).items()]
c.JupyterHub.load_roles = [dict(r, name=r.get("name", n)) for n, r in values["hub"].get("loadRoles", {{}}).items()]
for app, cfg in values["hub"].get("config", {{}}).items():
    cfg = dict(cfg)
    if app == "JupyterHub":
        c.JupyterHub.authenticator_class = cfg.pop("authenticator_class", "dummy")
        for secret in ("proxy_auth_token", "cookie_secret", "services"):
            cfg.pop(secret, None)
    c[app].update(cfg)
for key, source in sorted(values["hub"].get("extraConfig", {{}}).items()):
    exec(source)
"""

# The class page's own token: the class's users, their servers and tokens of theirs, on the Hub's API; no
# access to any server (each request to a student's server carries a token of that student's, gather.py).
PAGE_SCOPES = sorted(
    f"{scope}!group=class"
    for scope in ("list:users", "read:users:groups", "read:users:activity", "read:servers", "tokens")
)

# The environment of the hub's pod that the fragment reads: Kubernetes' variables for the chart's services.
HUB_POD = {
    "HUB_SERVICE_HOST": "10.96.0.10",
    "HUB_SERVICE_PORT": "8081",
    "PROXY_PUBLIC_SERVICE_HOST": "10.96.0.20",
    "PROXY_PUBLIC_SERVICE_PORT": "80",
    "PROXY_API_SERVICE_HOST": "10.96.0.30",
    "PROXY_API_SERVICE_PORT": "8001",
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def load_in_jupyterhub(config: Path, state: Path, env: dict[str, str], names: list[str]) -> dict[str, Any]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LABKIT_CLASS_", "JUPYTERHUB_"))}
    environment = {k: v for k, v in environment.items() if not k.endswith(("_SERVICE_HOST", "_SERVICE_PORT"))}
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(config), str(state), *names],
        env={**environment, **env, "PYTHONPATH": str(ROOT)},
        cwd=state,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"JupyterHub refused {config.name}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def z2jh_hub(values: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The hub config the values make, loaded in JupyterHub as in the hub's pod. Each hub.extraFiles file
    is written under a temporary directory, and its mountPath in hub.extraConfig pointed there."""
    state = tmp_path_factory.mktemp("z2jh")
    values = json.loads(json.dumps(values))
    for name, extra in values["hub"].get("extraFiles", {}).items():
        mounted = state / "mounted" / name / Path(extra["mountPath"]).name
        mounted.parent.mkdir(parents=True)
        mounted.write_text(extra["stringData"])
        values["hub"]["extraConfig"] = {
            key: source.replace(extra["mountPath"], str(mounted))
            for key, source in values["hub"]["extraConfig"].items()
        }
    config = state / "jupyterhub_config.py"
    config.write_text(CHART_CONFIG.format(values=json.dumps(values)))
    return load_in_jupyterhub(config, state, HUB_POD, ["ana", "ines", "mallory"])


def test_values_use_only_keys_the_chart_knows(values: dict[str, Any]) -> None:
    for where, known in CHART_KEYS.items():
        section = values
        for key in filter(None, where.split(".")):
            section = section.get(key, {})
        unknown = set(section) - known
        assert not unknown, f"{VALUES.name}: the chart has no {where or 'top-level'} key {sorted(unknown)}"


def test_values_carry_the_fragment_byte_for_byte(values: dict[str, Any]) -> None:
    carried = values["hub"]["extraFiles"]["labkit_class"]["stringData"]
    assert carried == FRAGMENT.read_text(), (
        f"{VALUES.relative_to(ROOT)} carries another labkit_class.py than {FRAGMENT.relative_to(ROOT)}: "
        "run `deploy/z2jh/sync-fragment` to copy it there"
    )


@pytest.mark.slow
def test_the_hub_config_of_the_values_loads_in_jupyterhub(z2jh_hub: dict[str, Any]) -> None:
    (page,) = [s for s in z2jh_hub["services"] if CLASS_PAGE in s.get("command", [])]
    assert page["command"] == ["/opt/labkit/bin/python", "-m", CLASS_PAGE]  # the hub image's labkit
    assert page["url"] == "http://hub:10101"
    assert page["environment"]["LABKIT_CLASS_PROXY_URL"] == "http://10.96.0.20:80"  # proxy-public
    roles = z2jh_hub["roles"]
    assert roles["labkit-class-page"]["services"] == [page["name"]]
    assert roles["labkit-class-page"]["scopes"] == PAGE_SCOPES
    assert roles["labkit-class-instructor"]["groups"] == ["instructors"]
    assert z2jh_hub["groups"] == {"class": ["ana", "ben", "chloe"], "instructors": ["ines"]}
    assert z2jh_hub["allowed"] == {"ana": True, "ines": True, "mallory": False}


@pytest.mark.parametrize(("version", "warned"), [((5, 4, 4), True), ((5, 5, 3), False), ((6, 0, 1), True),
                                                 ((6, 1, 0), False), ((6, 1, 1), False)])  # fmt: skip
def test_the_fragment_says_when_the_hub_cannot_make_the_pages_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], version: tuple[int, ...], warned: bool
) -> None:
    """JupyterHub 5.4.4 to 5.5.2 and 6.0.x answer a service 403 for a user's token under `tokens!group=`
    (apihandlers/users.py checks the filter with the service's kind); the hub image raises the chart's 5.4.4."""
    import jupyterhub
    from traitlets.config import Config

    monkeypatch.setattr(jupyterhub, "version_info", (*version, "", ""))
    monkeypatch.setattr(jupyterhub, "__version__", ".".join(map(str, version)))
    config = Config()
    exec(FRAGMENT.read_text(), {"get_config": lambda: config, "__name__": "labkit_class"})
    said = capsys.readouterr().err
    assert ("refuses the class page the students' tokens it needs" in said) is warned, said
    assert "jupyterhub==5.5.4" in IMAGES["hub"].read_text()


@pytest.mark.slow
def test_every_server_loads_the_lab_api_the_image_enables(z2jh_hub: dict[str, Any]) -> None:
    assert any(SERVER_EXTENSION in arg for arg in z2jh_hub["spawner_args"]), z2jh_hub["spawner_args"]
    assert f"jupyter server extension enable --sys-prefix {SERVER_EXTENSION}" in IMAGES["students"].read_text()
    __import__(SERVER_EXTENSION)


def test_the_class_page_is_a_module_of_labkit() -> None:
    import importlib.util

    assert importlib.util.find_spec(CLASS_PAGE), f"the service runs `python -m {CLASS_PAGE}`, which does not exist"


def test_the_proxy_reaches_the_class_page_in_the_hub_pod(values: dict[str, Any], z2jh_hub: dict[str, Any]) -> None:
    (page,) = [s for s in z2jh_hub["services"] if CLASS_PAGE in s.get("command", [])]
    port = int(page["url"].rsplit(":", 1)[1])
    assert [p["targetPort"] for p in values["hub"]["service"]["extraPorts"]] == [port]
    allowed = [p["port"] for rule in values["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]]
    assert allowed == [port], f"the hub's NetworkPolicy admits {allowed}, the class page listens on {port}"


def test_pods_allow_the_kernel_seal(values: dict[str, Any]) -> None:
    assert values["singleuser"]["extraPodConfig"]["hostUsers"] is False
    container = values["hub"]["config"]["KubeSpawner"]["container_security_context"]
    assert container == {
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
        "procMount": "Unmasked",
    }
    assert values["singleuser"].get("allowPrivilegeEscalation") is not True


def test_each_lab_lives_on_its_students_volume(values: dict[str, Any]) -> None:
    storage = values["singleuser"]["storage"]
    assert storage["type"] == "dynamic"
    assert storage["homeMountPath"] == "/home/jovyan"  # the image's home, where ~/.local/state/labkit is
    assert "LABKIT_HOME" not in values["singleuser"].get("extraEnv", {})
    assert "LABKIT_HOME" not in IMAGES["students"].read_text()


@pytest.mark.parametrize("image", IMAGES)
def test_images_pin_their_base_and_install_the_tested_versions(image: str) -> None:
    dockerfile = IMAGES[image].read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", base) and not base.endswith(":latest"), base
    install = re.search(r"pip install [^\n]*-c \S*constraints\.txt '?\S*iam-roles-for-ec2", dockerfile)
    assert install and " -e " not in install[0], f"{IMAGES[image].name}: labkit from constraints.txt, not editable"
    copied = re.findall(r"^COPY\s+(.+)\s+\S+$", dockerfile, re.M)
    assert not [c for c in copied if c.split()[0] == "."], "copy named files only, never the whole tree"


def test_the_students_image_can_make_namespaces() -> None:
    apt = re.search(r"apt-get install[^\n]*", IMAGES["students"].read_text())
    assert apt and {"util-linux", "iproute2", "curl"} <= set(apt[0].split())


def test_no_secret_in_the_values(values: dict[str, Any]) -> None:
    text = VALUES.read_text()
    for key in ("password:", "api_token:", "apiToken:", "cookieSecret:", "secretToken:", "client_secret:"):
        assert key not in text, f"{VALUES.name} holds {key} give it at install (--set), never in the file"


@pytest.mark.slow
def test_the_one_host_config_loads_in_jupyterhub(tmp_path: Path) -> None:
    assert ONE_HOST.exists(), f"{ONE_HOST.relative_to(ROOT)} is missing (docs/instructors.md copies it)"
    hub = load_in_jupyterhub(ONE_HOST, tmp_path, {}, [])
    (page,) = [s for s in hub["services"] if CLASS_PAGE in s.get("command", [])]
    assert page["url"].startswith("http://127.0.0.1:")
    assert {"labkit-class-page", "labkit-class-instructor"} <= set(hub["roles"])
    assert hub["roles"]["labkit-class-page"]["scopes"] == PAGE_SCOPES


def test_the_guide_names_files_that_exist() -> None:
    guide = (ROOT / "docs" / "instructors.md").read_text() + (ROOT / "README.md").read_text()
    pages = "\n".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))  # they cite other repos' docs/
    path = r"(?<![\w/.-])((?:deploy|{}labkit|jupyter|notebooks|tests|tools|benchmarks)/[\w./-]*\w)"
    named = set(re.findall(path.format("docs|"), guide)) | set(re.findall(path.format(""), pages))
    assert {"deploy/z2jh/values.yaml", "deploy/jupyterhub/labkit_class.py", "docs/class-page.png"} <= named
    assert {"labkit/seal/landlock.py", "labkit/labprocess/cliserver.py"} <= named  # the pages past the guide too
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"README.md or docs/ name files that do not exist: {missing}"
