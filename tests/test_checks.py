"""Checks: item by item, what a notebook builds, and what to do when something is missing."""

from __future__ import annotations

import pytest

import labkit
from conftest import Demo


def test_a_fresh_lab_is_not_ready_for_a_later_notebook(fresh_lab: labkit.Lab) -> None:
    with pytest.raises(labkit.LabNotReady) as caught:
        fresh_lab.ready_for("03")
    message = str(caught.value)
    assert message.startswith("The lab is not ready for notebook 03; missing: app-user exists, with IAMReadOnlyAccess;")
    assert "role DemoRoleForEC2 exists" in message
    assert message.endswith('Run `labkit reset --to 03` in a terminal (or lab.reset(to="03") here) to catch up.')


def test_a_report_names_what_is_missing_and_how_to_fix_it(fresh_lab: labkit.Lab) -> None:
    fresh_lab.reset(to="03")
    fresh_lab.client("iam").detach_role_policy(
        RoleName="DemoRoleForEC2", PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    )
    report = fresh_lab.check("02")
    assert not report.ok
    assert [c.item for c in report.missing] == ["IAMReadOnlyAccess is attached to it"]
    assert str(report).splitlines()[0] == "Notebook 02: 1 of 4 items missing."
    assert (
        "✗ IAMReadOnlyAccess is attached to it: attach_role_policy (notebook 02), or run `labkit reset --to 03`"
        in str(report)
    )
    assert list(report.to_frame().columns) == ["", "item", "to fix"]


def test_a_credentials_file_left_on_app_server_is_noticed(fresh_lab: labkit.Lab) -> None:
    fresh_lab.reset(to="02")
    fresh_lab.instance("app-server").run("mkdir -p ~/.aws && echo '[default]' > ~/.aws/credentials")
    assert [c.item for c in fresh_lab.check("01").missing] == ["no ~/.aws/credentials on app-server"]


def test_attaching_the_role_is_what_notebook_03_checks(demo: Demo) -> None:
    assert [c.item for c in demo.lab.check("03").missing] == ["demo-instance holds DemoRoleForEC2"]
    demo.attach()
    assert demo.lab.check("03").ok


def test_an_error_in_a_notebook_shows_its_message_not_a_traceback() -> None:
    error = labkit.LabNotReady("The lab is not ready for notebook 03; ...")
    assert error._render_traceback_() == ["\x1b[1;31mLabNotReady\x1b[0m: The lab is not ready for notebook 03; ..."]
