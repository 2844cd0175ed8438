"""Sealed instances: their own home and environment, the real tools, clear errors."""

from __future__ import annotations

import re

import pytest

import labkit
from conftest import Demo, create_role, imds_get, launch
from labkit.transcript import as_a_terminal_shows

EC2_READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"


def test_the_environment_is_built_from_nothing(either_demo: Demo) -> None:
    """Sealed by the kernel, no endpoint and no proxy: aws and curl reach AWS's own addresses."""
    names = {line.split("=", 1)[0] for line in either_demo.box.run("env").stdout.splitlines()}
    proxies = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"}
    shell = {"PWD", "SHLVL", "_"}  # set by bash itself
    expected = {"HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "PATH", "LANG", "TERM", "AWS_DEFAULT_REGION"} | shell
    assert names == (expected if either_demo.box.sealed else expected | proxies | {"AWS_ENDPOINT_URL"})


def test_the_cli_on_an_instance_works_in_the_labs_region(demo: Demo) -> None:
    """The instance's `aws` uses the lab's region, us-east-1, where the lab keeps its instances.

    Guards against another region in the instance's environment, which only notebook 04's `aws ec2`
    line caught (mutation in labkit/instances.py, `Instance.environ`: `"AWS_DEFAULT_REGION": REGION`
    replaced by `"AWS_DEFAULT_REGION": "eu-west-1"`): there the lab has no instances at all.
    """
    create_role(demo.iam, "EC2Reader", policy=EC2_READ_ONLY)
    demo.attach("EC2Reader")
    listed = "aws ec2 describe-instances --query 'Reservations[].Instances[].InstanceId' --output text"
    configured, described = demo.box.run_lines(f"aws configure list\n{listed}").results
    rows = [line.split() for line in configured.stdout.splitlines()]
    assert [row for row in rows if row[:1] == ["region"]] == [["region", "us-east-1", "env", "AWS_DEFAULT_REGION"]]
    assert (described.exit_code, described.stdout.split()) == (0, [demo.instance_id])


def test_the_shell_starts_in_the_instance_home(either_demo: Demo) -> None:
    """Its home is kept in the lab's state directory, where it shows when sealed by environment."""
    (either_demo.box.home / "kept-here").touch()
    result = either_demo.box.run('pwd; echo "$HOME"; echo "$USER"; ls')
    home = "/home/ec2-user" if either_demo.box.sealed else str(either_demo.box.home)
    assert result.stdout.splitlines() == [home, home, "ec2-user", "kept-here"]


def test_each_instance_has_its_own_home(demo: Demo) -> None:
    launch(demo.lab, "second-instance")
    second = demo.lab.instance("second-instance")
    configured = demo.box.run("aws configure set aws_access_key_id AKIAEXAMPLEEXAMPLE1 && cat ~/.aws/credentials")
    assert configured.stdout.splitlines() == ["[default]", "aws_access_key_id = AKIAEXAMPLEEXAMPLE1"]
    assert (demo.box.home / ".aws" / "credentials").is_file()
    assert second.run("cat ~/.aws/credentials").exit_code == 1


def test_the_real_tools_are_on_the_path(demo: Demo) -> None:
    result = demo.box.run("aws --version && curl --version | head -1 && python3 -c 'import botocore; print(1)'")
    assert result.exit_code == 0
    assert result.stdout.startswith("aws-cli/1.")


def test_other_outside_addresses_are_unreachable_with_a_message(environment_demo: Demo) -> None:
    """Sealed by environment, the proxy refuses; sealed by the kernel, there is no route at all
    (tests/test_sealed.py)."""
    box = environment_demo.box
    http = box.run("curl -s http://example.com/")
    assert http.stdout.startswith("labkit: this simulated instance has no route to example.com")
    https = box.run("curl -sS https://example.com/")
    assert https.exit_code == 56 and "CONNECT tunnel failed, response 403" in https.stderr
    python = box.run("python3 -c \"import urllib.request; urllib.request.urlopen('http://example.com')\"")
    assert "HTTP Error 403" in python.stderr


def test_python_and_botocore_on_the_instance_use_its_metadata_service(attached: Demo) -> None:
    script = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
    result = attached.box.run(f'python3 -c "{script}"')
    assert result.stdout.strip() == f"arn:aws:sts::123456789012:assumed-role/DemoRoleForEC2/{attached.instance_id}"


def test_an_instance_is_found_by_id_or_name(demo: Demo) -> None:
    assert demo.lab.instance(demo.instance_id).id == demo.lab.instance("demo-instance").id == demo.instance_id


def test_an_unknown_instance_lists_the_instances_there_are(demo: Demo) -> None:
    with pytest.raises(labkit.InstanceNotFound) as caught:
        demo.lab.instance("i-0nope")
    assert str(caught.value).startswith(
        f"No instance i-0nope in this lab; instances: {demo.instance_id} (demo-instance, running)."
    )


def test_a_terminated_instance_runs_nothing(demo: Demo) -> None:
    demo.ec2.terminate_instances(InstanceIds=[demo.instance_id])
    with pytest.raises(
        labkit.InstanceNotRunning, match=f"Instance {demo.instance_id} \\(demo-instance, terminated\\) is not running"
    ):
        demo.lab.instance("demo-instance")


def test_a_stale_shell_of_a_terminated_instance_gets_no_metadata(environment_demo: Demo) -> None:
    """Sealed by environment, a shell may outlive its instance; sealed by the kernel, terminating
    the instance ends its processes (tests/test_sealed.py)."""
    demo = environment_demo
    demo.ec2.terminate_instances(InstanceIds=[demo.instance_id])
    result = demo.box.run("curl -s http://169.254.169.254/latest/meta-data/instance-id")
    assert (
        result.stdout.strip()
        == f"labkit: instance {demo.instance_id} is terminated; its metadata service does not answer."
    )


def test_a_command_that_does_not_exist_is_127(demo: Demo) -> None:
    result = demo.box.run("nosuchcommand --help")
    assert result.exit_code == 127
    assert "nosuchcommand: command not found" in result.stderr


def test_a_result_reads_like_a_terminal(demo: Demo) -> None:
    result = demo.box.run("echo '<out>'; echo err >&2; exit 3")
    assert str(result) == f"{demo.box.prompt} echo '<out>'; echo err >&2; exit 3\n<out>\nerr\n[exit status 3]"
    assert demo.box.prompt.startswith("[ec2-user@ip-172-31-") and demo.box.prompt.endswith(" ~]$")
    page = result._repr_html_()
    assert "&lt;out&gt;" in page and "[exit status 3]" in page and "<out>" not in page


def test_carriage_returns_leave_what_a_terminal_shows() -> None:
    """Each line is what is left on screen once carriage returns have redrawn it: its last drawing.
    A line end written as \\r\\n stays one line end, and a \\r that only returns to the line's start
    before the line ends (or the output does) erases nothing.

    Guards against the redrawing being dropped (in labkit/transcript.py, `as_a_terminal_shows`
    returning the text unchanged, or keeping the first drawing of a line instead of the last)."""
    shown = {
        "a\rbb\rccc\n": "ccc\n",
        "one\rtwo\nthree\rfour\n": "two\nfour\n",
        "x\r\ny\r\n": "x\ny\n",
        "a\rbb\rccc\r\n": "ccc\n",
        "50%\r100%\r": "100%",
        "done\r": "done",
        "\r  0 --:--\r100 --:--\n": "100 --:--\n",
        "\r\n\r\n": "\n\n",
        "no carriage return\nat all": "no carriage return\nat all",
    }
    assert {text: as_a_terminal_shows(text) for text in shown} == shown


CURL_METER = re.compile(
    r"  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n"
    r"                                 Dload  Upload   Total   Spent    Left  Speed\n"
    r"100 +(\d+) +100 +\1 +0 +0 +[\d.]+[kMG]? +0 --:--:-- --:--:-- --:--:-- +[\d.]+[kMG]?\n"
)


def test_a_cell_shows_a_redrawn_line_as_a_terminal_leaves_it(either_demo: Demo) -> None:
    """Run in a `%%instance` cell (and by `run`), a command that redraws a line with carriage
    returns, on stdout (a terminal) or stderr, shows the line's last drawing, as the terminal it runs
    on would leave it; curl's progress meter to the metadata service shows its final state alone.

    Guards against the redrawing being dropped (in labkit/transcript.py, `as_a_terminal_shows`
    returning the text unchanged, or keeping the first drawing of a line instead of the last), which
    only notebook 05's committed output showed."""
    box = either_demo.box
    meter = imds_get("http://169.254.169.254/latest/meta-data/", "-o /dev/null")
    redraws = "printf 'a\\rbb\\rccc\\n'; printf 'a\\rbb\\r\\n'"  # the second ends its line with a \r
    transcript = box.run_lines(f"{redraws}\nprintf '50%%\\r100%%\\r\\n' >&2; printf 'x\\r\\ny\\n'\n{meter}")
    assert [(r.exit_code, r.stdout, r.stderr) for r in transcript.results[:2]] == [
        (0, "ccc\nbb\n", ""),
        (0, "x\ny\n", "100%\n"),
    ]
    curl = transcript.results[2]
    assert (curl.exit_code, curl.stdout) == (0, "")
    assert CURL_METER.fullmatch(curl.stderr), curl.stderr
    assert "\r" not in str(transcript)
    ran = box.run(f"{redraws}; printf '50%%\\r100%%\\r\\n' >&2")
    assert (ran.stdout, ran.stderr) == ("ccc\nbb\n", "100%\n")
