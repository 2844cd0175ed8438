"""The live diagram and the policy table, drawn from the lab as it is."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import labkit
from conftest import EC2_TRUST, READ_ONLY, ROLE, Demo, create_role, launch


def holds(diagram: labkit.Diagram) -> list[bool]:
    return [link.holds for link in diagram.links]


def test_before_attaching_the_chain_breaks_at_the_instance(demo: Demo) -> None:
    drawn = labkit.diagram(demo.lab, "demo-instance", profile=ROLE)
    assert holds(drawn) == [True, False, True, False]
    assert drawn.boxes[0] == ("IAM role", (ROLE, "IAMReadOnlyAccess"))


def test_after_attaching_every_link_holds(attached: Demo) -> None:
    drawn = labkit.diagram(attached.lab, "demo-instance")
    assert holds(drawn) == [True, True, True, True]
    assert drawn.boxes[4] == ("AWS APIs", ("iam:Get*, iam:List*", "+4 more"))
    ElementTree.fromstring(drawn._repr_svg_())  # well-formed SVG


def test_without_policies_credentials_still_arrive_but_allow_nothing(attached: Demo) -> None:
    attached.iam.detach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    drawn = labkit.diagram(attached.lab, "demo-instance")
    assert holds(drawn)[3] is True
    assert drawn.boxes[0][1] == (ROLE, "no policies attached") and drawn.boxes[4][1] == ("nothing allowed",)


def test_a_role_ec2_may_not_assume_breaks_the_last_link(fresh_lab: labkit.Lab) -> None:
    lambda_trust = json.loads(json.dumps(EC2_TRUST).replace("ec2.amazonaws.com", "lambda.amazonaws.com"))
    create_role(fresh_lab.client("iam"), "LambdaRole", trust=lambda_trust)
    instance_id = launch(fresh_lab, "box")
    fresh_lab.client("ec2").associate_iam_instance_profile(
        IamInstanceProfile={"Name": "LambdaRole"}, InstanceId=instance_id
    )
    drawn = labkit.diagram(fresh_lab, "box")
    assert drawn.links[3] == labkit.display.Link(False, "EC2 may not assume role")
    assert "-x EC2 may not assume role x-" in str(drawn)


def test_the_policy_table_reads_the_lab_copies(lab: labkit.Lab) -> None:
    names = ["AmazonS3ReadOnlyAccess", "AmazonS3FullAccess", "IAMReadOnlyAccess", "CloudWatchAgentServerPolicy"]
    table = labkit.policy_table(lab, [f"arn:aws:iam::aws:policy/{n}" for n in names])
    frame = table.frame
    assert list(frame["policy"]) == names
    assert list(frame["read-only"]) == ["yes", "no", "yes", "no"]
    allows = "allows (each * matches every action that begins so)"
    assert frame.loc[1, allows] == "s3:*, s3-object-lambda:*"
    assert list(frame["action patterns"])[:2] == [len(frame.loc[0, allows].split(", ")), 2]


def test_the_policy_table_shows_every_cell_whole_and_no_row_numbers(lab: labkit.Lab) -> None:
    """It showed pandas' index, cut long cells to '…', and called pattern counts 'actions allowed'."""
    names = ["CloudWatchAgentServerPolicy", "AmazonSSMManagedInstanceCore", "AmazonS3FullAccess"]
    table = labkit.policy_table(lab, [f"arn:aws:iam::aws:policy/{n}" for n in names])
    longest = max(table.frame.iloc[:, -1], key=len)
    assert len(longest) > 80
    for shown in (repr(table), table._repr_html_()):
        assert longest in shown and "…" not in shown and "..." not in shown
        assert "actions allowed" not in shown and "action patterns" in shown
    assert repr(table).splitlines()[1].lstrip().startswith(names[0])  # no row number before the name
    assert "<th></th>" not in table._repr_html_() and "<th>0</th>" not in table._repr_html_()
