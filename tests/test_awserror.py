"""In a notebook, an error AWS returns shows as AWS's one line, and the cell still raises."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

import labkit


def run(cells: list[str], lab: labkit.Lab, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, object]]]:
    """Run the cells in a real kernel connected to the test's lab; each cell's outputs."""
    monkeypatch.setenv("LABKIT_HOME", str(lab.home))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    for cell in nb.cells[1:]:
        cell.metadata["tags"] = ["raises-exception"]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return [[dict(o) for o in cell.outputs] for cell in nb.cells]


def test_a_refusal_shows_only_what_aws_says(fresh_lab: labkit.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = run(
        [
            "import labkit\n\nlab = labkit.connect()",
            'lab.client("iam").get_role(RoleName="NoSuchRole")',
            'lab.client("ec2").describe_instances(InstanceIds=["i-0123456789abcdef0"])',
            "1 / 0",
        ],
        fresh_lab,
        monkeypatch,
    )
    modelled, plain, other = outputs[1][0], outputs[2][0], outputs[3][0]
    assert modelled["output_type"] == "error" and modelled["ename"] == "NoSuchEntityException"
    assert modelled["traceback"] == [
        "\x1b[0;31mbotocore.errorfactory.NoSuchEntityException\x1b[0m: An error occurred (NoSuchEntity) when "
        "calling the GetRole operation: The role with name NoSuchRole cannot be found."
    ]
    assert plain["ename"] == "ClientError" and len(plain["traceback"]) == 1
    assert "botocore.exceptions.ClientError\x1b[0m: An error occurred (InvalidInstanceID.NotFound)" in str(
        plain["traceback"][0]
    )
    # a positive control: other errors keep IPython's whole traceback
    assert other["ename"] == "ZeroDivisionError" and len(other["traceback"]) > 1
