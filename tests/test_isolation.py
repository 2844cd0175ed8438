"""A student's own AWS credentials are never read, used or copied into the lab (canary values)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import botocore.exceptions
import pytest

import labkit
from conftest import NO_CREDENTIALS, Demo, imds_get

CREDENTIALS = "http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2"

CANARY_KEY = "AKIACANARYCANARY0001"
CANARY_SECRET = "canary/secret/canary/secret/canary/0001"
CANARY_TOKEN = "canary-session-token-canary-session-token-0001"
CANARIES = (CANARY_KEY, CANARY_SECRET, CANARY_TOKEN, "eu-west-3")


@pytest.fixture
def canary_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host HOME whose ~/.aws and AWS_* variables hold recognisable fake keys."""
    home = tmp_path / "student"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {CANARY_KEY}\naws_secret_access_key = {CANARY_SECRET}\n"
        f"[canary]\naws_access_key_id = {CANARY_KEY}\naws_secret_access_key = {CANARY_SECRET}\n"
    )
    (home / ".aws" / "config").write_text("[default]\nregion = eu-west-3\n[profile canary]\nregion = eu-west-3\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("AWS_PROFILE", "canary")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    return home


def test_nothing_on_an_instance_sees_or_uses_the_host_credentials(demo: Demo, canary_home: Path) -> None:
    seen = demo.box.run("env; cat ~/.aws/credentials; ls -a ~")
    assert [canary for canary in CANARIES if canary in seen.stdout + seen.stderr] == []
    assert str(canary_home) not in seen.stdout
    result = demo.box.run("aws iam list-users")
    assert (result.exit_code, result.stderr.strip()) == (255, NO_CREDENTIALS)


def aws_variables(listing: str, separator: str = "\n") -> dict[str, str]:
    """The AWS_* variables in a listing of an environment (`env`, or /proc/PID/environ)."""
    pairs = (entry.split("=", 1) for entry in listing.split(separator) if "=" in entry)
    return {name: value for name, value in pairs if name.startswith("AWS_")}


def test_no_aws_variable_of_the_host_reaches_an_instance(either_demo: Demo, canary_home: Path) -> None:
    """An instance's shell and the processes it starts hold only the lab's AWS_* variables, and
    nothing run there prints a canary value of the host, whether or not `aws` finds credentials.

    Guards against the host's AWS_SECRET_ACCESS_KEY copied into the instance's environment (mutation
    in labkit/instances.py, `Instance.environ`: `"AWS_DEFAULT_REGION": REGION,` followed by
    `**{k: v for k, v in os.environ.items() if k == "AWS_SECRET_ACCESS_KEY"},`): a secret without
    its key id leaves `aws` saying "Unable to locate credentials", so only the environment shows it.
    """
    # the environment a process there starts with, as it prints it (a fenced instance may not read
    # /proc/self/environ: labkit/seal/landlock.py hides every process's /proc directory, its own too)
    own = "env -0 | tr '\\0' '\\n'"
    control = subprocess.run(["bash", "-c", own], capture_output=True, text=True, check=True).stdout
    assert aws_variables(control)["AWS_SECRET_ACCESS_KEY"] == CANARY_SECRET  # the probe sees the host's
    demo = either_demo
    lab = {"AWS_DEFAULT_REGION": "us-east-1"}  # sealed by the kernel, aws reaches AWS's own endpoints
    lab |= {} if demo.box.sealed else {"AWS_ENDPOINT_URL": demo.lab.api_url}
    shell, process = demo.box.run_lines(f"env\n{own}").results
    assert aws_variables(shell.stdout) == aws_variables(process.stdout) == lab
    ran = demo.box.run_lines(
        "python3 -c 'import os; print(os.environ)'\naws configure list\naws iam list-users\n"
        "aws sts get-caller-identity\naws --debug sts get-caller-identity\nls -a ~; cat ~/.aws/*"
    )
    printed = str(ran)
    assert [canary for canary in (*CANARIES, str(canary_home)) if canary in printed] == []
    assert "AWS_DEFAULT_REGION" in printed and "<not set>" in printed  # it did print the environment


def test_lab_clients_read_no_aws_variable_and_no_file_under_the_home_aws(lab_home: Path, canary_home: Path) -> None:
    probe = textwrap.dedent(f"""
        import json, sys
        opened = []
        sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
        import labkit
        lab = labkit.connect({str(lab_home)!r})
        arn = lab.client("sts").get_caller_identity()["Arn"]
        region = lab.client("iam").meta.region_name
        print(json.dumps({{"arn": arn, "region": region, "opened": [p for p in opened if ".aws" in p]}}))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    assert report == {"arn": "arn:aws:iam::123456789012:user/admin", "region": "us-east-1", "opened": []}


def test_the_lab_process_gets_no_aws_variables(tmp_path: Path, canary_home: Path) -> None:
    home = tmp_path / "lab"
    started = subprocess.run(
        [sys.executable, "-c", f"import labkit; print(labkit.up({str(home)!r})[0].pid)"],
        capture_output=True, text=True, check=True, env=os.environ.copy(),
    )  # fmt: skip
    pid = int(started.stdout)
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert [v for v in environ if v.startswith(b"AWS_")] == [
            b"AWS_CONFIG_FILE=/dev/null",
            b"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
        ]
    finally:
        subprocess.run([sys.executable, "-c", f"import labkit; labkit.down({str(home)!r})"], check=True)


@pytest.mark.slow
def test_two_labs_at_the_same_checkpoint_share_ids_but_never_keys(lab: labkit.Lab, tmp_path: Path) -> None:
    other = labkit.connect(tmp_path / "other-lab")
    try:
        for each in (lab, other):
            each.reset(to="04")
        assert [i.instance_id for i in lab.instances()] == [i.instance_id for i in other.instances()]
        document = json.loads(lab.instance("demo-instance").run(imds_get(CREDENTIALS)).stdout)
        keys = {
            "with the role session of an instance of the first lab": dict(
                aws_access_key_id=document["AccessKeyId"],
                aws_secret_access_key=document["SecretAccessKey"],
                aws_session_token=document["Token"],
            ),
            "with the administrator keys of the first lab": dict(
                aws_access_key_id=lab.info.admin_access_key_id,
                aws_secret_access_key=lab.info.admin_secret_access_key,
            ),
        }
        for how, credentials in keys.items():
            with pytest.raises(botocore.exceptions.ClientError) as caught:
                other.client("iam", **credentials).list_users()
            assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId", how
    finally:
        labkit.down(other.home)
