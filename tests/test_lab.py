"""The lab process: start, reuse, loopback only, authorization on, reset, outliving its clients, stop."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

import labkit
from conftest import Demo, create_role, imds_get, launch
from labkit.magic import instance_magic
from labkit.statedir import lab_home, read_info, write_info

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, method: str = "GET") -> int:
    try:
        with NO_PROXY.open(urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_second_up_reuses_the_running_lab(lab: labkit.Lab, lab_home: Path) -> None:
    info, started = labkit.up(lab_home)
    assert (info.pid, started) == (lab.info.pid, False)
    assert labkit.connect(lab_home).info == lab.info


def test_the_state_directory_and_its_keys_are_owner_only(lab: labkit.Lab, lab_home: Path) -> None:
    assert stat.S_IMODE(lab_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((lab_home / "lab.json").stat().st_mode) == 0o600


def test_the_lab_listens_on_loopback_only(lab: labkit.Lab) -> None:
    listening = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{lab.info.pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A":  # LISTEN
                listening.setdefault(int(port, 16), set()).add(address)
    assert listening[lab.info.api_port] == {"0100007F"}
    assert listening[lab.info.imds_port] == {"0100007F"}


def test_a_request_from_an_unknown_identity_is_refused(lab: labkit.Lab) -> None:
    stranger = labkit.connection.sealed_botocore_session().create_client(
        "iam", region_name="us-east-1", endpoint_url=lab.api_url,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        stranger.list_users()
    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"


def signed_as(lab: labkit.Lab, user: str, *services: str) -> list[Any]:
    """Clients for `services` that sign with a new access key of `user`."""
    key = lab.client("iam").create_access_key(UserName=user)["AccessKey"]
    keys = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    return [lab.client(service, **keys) for service in services]


def test_an_ordinary_user_is_checked_against_its_policies(fresh_lab: labkit.Lab) -> None:
    [alice] = signed_as(fresh_lab, "alice", "iam")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        alice.list_users()
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert error["Message"] == (
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: iam:ListUsers on resource: "
        "arn:aws:iam::123456789012:user/ because no identity-based policy allows the iam:ListUsers action"
    )


def test_what_no_policy_allows_is_refused_in_aws_words(fresh_lab: labkit.Lab) -> None:
    fresh_lab.client("iam").create_role(RoleName="Ops", Path="/team/", AssumeRolePolicyDocument="{}")
    bob_iam, bob_ec2 = signed_as(fresh_lab, "bob", "iam", "ec2")
    bob = "User: arn:aws:iam::123456789012:user/bob is not authorized to perform:"
    refusals = {
        "GetRole": (lambda: bob_iam.get_role(RoleName="Ops"), "AccessDenied",
                    f"{bob} iam:GetRole on resource: arn:aws:iam::123456789012:role/team/Ops because no "
                    "identity-based policy allows the iam:GetRole action"),
        "ListInstanceProfiles": (lambda: bob_iam.list_instance_profiles(), "AccessDenied",
                                 f"{bob} iam:ListInstanceProfiles on resource: arn:aws:iam::123456789012:"
                                 "instance-profile/ because no identity-based policy allows the "
                                 "iam:ListInstanceProfiles action"),
        "GetAccountSummary": (lambda: bob_iam.get_account_summary(), "AccessDenied",
                              f"{bob} iam:GetAccountSummary on resource: * because no identity-based policy allows the "
                              "iam:GetAccountSummary action"),
        "ListPolicies": (lambda: bob_iam.list_policies(), "AccessDenied",
                         f"{bob} iam:ListPolicies on resource: policy path / because no identity-based policy "
                         "allows the iam:ListPolicies action"),
        "DescribeInstances": (lambda: bob_ec2.describe_instances(), "UnauthorizedOperation",
                              f"You are not authorized to perform this operation. {bob} ec2:DescribeInstances "
                              "because no identity-based policy allows the ec2:DescribeInstances action"),
    }  # fmt: skip
    for operation, (call, code, message) in refusals.items():
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call()
        assert (operation, caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]) == (
            operation,
            code,
            message,
        )


def test_an_explicit_deny_says_where_it_was_found(fresh_lab: labkit.Lab) -> None:
    """IAM User Guide, "Troubleshoot access denied error messages" (before issue 23, moto's short
    sentence stood)."""
    iam = fresh_lab.client("iam")
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"}]}
    iam.put_user_policy(UserName="carol", PolicyName="NoListing", PolicyDocument=json.dumps(deny))
    [carol] = signed_as(fresh_lab, "carol", "iam")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        carol.list_users()
    message = caught.value.response["Error"]["Message"]
    assert message == (
        "User: arn:aws:iam::123456789012:user/carol is not authorized to perform: iam:ListUsers on resource: "
        "arn:aws:iam::123456789012:user/ with an explicit deny in an identity-based policy"
    )


def test_moto_control_api_is_closed_and_the_lab_control_needs_the_secret(lab: labkit.Lab) -> None:
    assert http_status(f"{lab.api_url}/moto-api/reset", "POST") == 403
    assert http_status(f"{lab.api_url}/_labkit/reset", "POST") == 401
    assert lab.client("iam").list_users()["Users"]


def test_reset_wipes_back_to_a_freshly_bootstrapped_lab(demo: Demo) -> None:
    demo.box.run("mkdir -p ~/.aws && echo secret > ~/.aws/credentials")
    assert demo.lab.reset() > 0
    assert [u["UserName"] for u in demo.iam.list_users()["Users"]] == ["admin", "alice", "bob", "carol"]
    assert demo.iam.list_roles()["Roles"] == []
    assert demo.lab.instances() == []
    assert not (demo.lab.home / "instances" / demo.instance_id).exists()


def test_the_lab_outlives_the_clients_that_use_it(fresh_lab: labkit.Lab, lab_home: Path) -> None:
    kernel = textwrap.dedent(f"""
        import labkit
        lab = labkit.connect({str(lab_home)!r})
        lab.client("iam").create_user(UserName="made-by-a-kernel")
        print(lab.info.pid)
    """)
    pid = subprocess.run([sys.executable, "-c", kernel], capture_output=True, text=True, check=True).stdout
    again = labkit.connect(lab_home)
    assert int(pid) == again.info.pid == fresh_lab.info.pid
    assert "made-by-a-kernel" in [u["UserName"] for u in again.client("iam").list_users()["Users"]]


@pytest.mark.slow
def test_after_down_and_up_a_connection_follows_its_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Clients, instances and `%%instance` of an open notebook: one line while the lab is stopped,
    and the same objects work again once `labkit up` has brought the lab back."""
    lab = labkit.connect(tmp_path)
    try:
        iam = lab.client("iam")
        instance_id = launch(lab, "box")
        box = lab.instance("box")
        stopped = lab.info.pid
        labkit.down(tmp_path)
        for call in (iam.list_users, lambda: box.run("aws sts get-caller-identity"), lambda: lab.instance("box")):
            with pytest.raises(labkit.LabNotRunning) as caught:
                call()
            assert str(caught.value).startswith("Your lab has stopped (`labkit down`, or its process ended)")
            assert "labkit up" in str(caught.value)
        info, started = labkit.up(tmp_path)
        assert started and info.pid != stopped
        assert "alice" in [u["UserName"] for u in iam.list_users()["Users"]]
        assert lab.info.pid == info.pid
        assert box.run(imds_get("http://169.254.169.254/latest/meta-data/instance-id")).stdout == instance_id
        capsys.readouterr()
        instance_magic(lab, "box", imds_get("http://169.254.169.254/latest/meta-data/instance-id"))
        assert capsys.readouterr().out.strip().endswith(instance_id)
    finally:
        labkit.down(tmp_path)


def test_a_lab_that_died_is_one_line_not_a_connection_traceback(tmp_path: Path) -> None:
    lab = labkit.connect(tmp_path)
    try:
        os.kill(lab.info.pid, 9)
        with pytest.raises(labkit.LabNotRunning) as caught:
            lab.client("iam").list_users()
        assert "labkit up" in str(caught.value)
    finally:
        labkit.down(tmp_path)


def test_status_tells_what_the_lab_holds(demo: Demo) -> None:
    demo.attach()
    status = demo.lab.status()
    assert status.users == ["admin", "alice", "bob", "carol"]
    assert status.roles == ["DemoRoleForEC2"]
    [instance] = status.instances
    assert (instance.instance_id, instance.name, instance.state) == (demo.instance_id, "demo-instance", "running")
    assert instance.instance_profile_arn == "arn:aws:iam::123456789012:instance-profile/DemoRoleForEC2"
    assert status.role_of(instance) == "DemoRoleForEC2"


def test_env_makes_a_terminal_aws_act_as_the_administrator(lab: labkit.Lab) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", **lab.env()}
    aws = Path(sys.executable).parent / "aws"
    result = subprocess.run([str(aws), "sts", "get-caller-identity", "--query", "Arn", "--output", "text"],
                            env=env, capture_output=True, text=True)  # fmt: skip
    assert result.stdout.strip() == "arn:aws:iam::123456789012:user/admin"


def test_down_leaves_no_process_not_even_a_zombie(tmp_path: Path) -> None:
    info, started = labkit.up(tmp_path)  # this test's process is the lab's parent
    assert started and Path(f"/proc/{info.pid}").exists()
    assert labkit.down(tmp_path) is True
    assert not Path(f"/proc/{info.pid}").exists()  # a zombie would still be listed there
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)
    assert read_info(tmp_path) is None
    with pytest.raises(labkit.LabNotRunning, match="labkit up"):
        labkit.connect(tmp_path, start=False)


@pytest.mark.slow
def test_a_stale_record_does_not_fool_up_or_down(tmp_path: Path) -> None:
    info, _ = labkit.up(tmp_path)
    labkit.down(tmp_path)
    write_info(tmp_path, info)  # the record a killed lab leaves behind
    second, started = labkit.up(tmp_path)
    assert started and second.pid != info.pid
    assert labkit.down(tmp_path)
    assert labkit.down(tmp_path) is False


def test_lab_home_is_labkit_home_else_a_per_user_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "mine"))
    assert lab_home() == tmp_path / "mine"
    monkeypatch.delenv("LABKIT_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert lab_home() == tmp_path / "state" / "labkit"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lab_home() == tmp_path / ".local" / "state" / "labkit"


def test_creating_what_the_demo_needs_twice_is_an_aws_error_not_a_crash(fresh_lab: labkit.Lab) -> None:
    create_role(fresh_lab.client("iam"))
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        create_role(fresh_lab.client("iam"))
    assert caught.value.response["Error"]["Code"] == "EntityAlreadyExists"
    launch(fresh_lab, "still-works")
    assert fresh_lab.instance("still-works").run("true").ok


def test_a_deactivated_key_is_refused_as_aws_refuses_it(fresh_lab: labkit.Lab) -> None:
    iam = fresh_lab.client("iam")
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    bob = fresh_lab.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert bob.get_caller_identity()["Arn"].endswith(":user/bob")
    iam.update_access_key(UserName="bob", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        bob.get_caller_identity()
    assert caught.value.response["Error"] == {
        "Type": "Sender",
        "Code": "InvalidClientTokenId",
        "Message": "The security token included in the request is invalid.",
    }


def test_a_lab_shows_what_it_holds_as_a_table(lab: labkit.Lab) -> None:
    page = lab._repr_html_()
    assert page.startswith("<p>Your lab, running on this machine. It holds:</p><table")
    assert "<td>admin</td>" in page
