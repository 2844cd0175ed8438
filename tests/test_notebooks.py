"""The committed notebooks: complete, honestly executed, shaped alike, and re-runnable.

nbval (`make test`) checks every committed output against a fresh run; these tests make sure it
has something real to check, and that a student can run each notebook twice in a row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import labkit
from labkit import catalogue, solutions

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))
BY_NAME = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
CHALLENGE = Path(__file__).resolve().parent.parent / "notebooks" / catalogue.NOTEBOOKS[catalogue.CHALLENGE]


def cells(path: Path) -> list[Any]:
    return list(nbformat.read(path, as_version=4).cells)


def code_cells(path: Path) -> list[Any]:
    return [c for c in cells(path) if c.cell_type == "code"]


def tags(cell: Any) -> list[str]:
    return list(cell.metadata.get("tags", []))


def only_comments(source: str) -> bool:
    """A cell left for the student's own work: comments that say what to write there, no code."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in source.splitlines())


def test_the_series_is_the_eight_notebooks_of_the_lesson() -> None:
    assert [p.name for p in NOTEBOOKS] == list(catalogue.NOTEBOOKS.values())


@BY_NAME
def test_every_code_cell_ran_once_from_the_top(path: Path) -> None:
    counts = [c.execution_count for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1))


@BY_NAME
def test_every_code_cell_but_definitions_shows_something(path: Path) -> None:
    """Only the challenge (07) leaves cells for the student's own work, which hold only a comment."""
    room = path == CHALLENGE
    silent = [c.source for c in code_cells(path) if not c.outputs and not (room and only_comments(c.source))]
    assert all(re.match(r"(import |def |trust_policy = |from )", source) or "\ndef " in source for source in silent)


@BY_NAME
def test_no_output_shows_a_traceback_from_inside_labkit(path: Path) -> None:
    for cell in code_cells(path):
        for output in cell.outputs:
            text = "\n".join(output.get("traceback", [])) + output.get("text", "")
            assert "labkit/" not in text and "Traceback" not in output.get("text", ""), cell.source


@BY_NAME
def test_cells_that_raise_are_tagged_and_announced_and_tagged_cells_raise(path: Path) -> None:
    every = cells(path)
    for index, cell in enumerate(every):
        if cell.cell_type != "code":
            continue
        raised = any(o.output_type == "error" for o in cell.outputs)
        assert raised == ("raises-exception" in tags(cell)), cell.source
        if raised:
            assert "on purpose" in every[index - 1].source, every[index - 1].source


@BY_NAME
def test_nothing_is_ignored_or_marked_in_the_code(path: Path) -> None:
    for cell in code_cells(path):
        assert not [t for t in tags(cell) if t.startswith("nbval")], cell.source
        assert "NBVAL" not in cell.source


@BY_NAME
def test_the_notebook_opens_and_closes_as_the_series_does(path: Path) -> None:
    number = path.name[:2]
    every = cells(path)
    assert every[0].cell_type == "markdown" and re.fullmatch(rf"# {number} · [^\n]+", every[0].source)
    assert "**Goal:**" in every[1].source and "**Assumes:**" in every[1].source
    sources = [c.source for c in code_cells(path)]
    assert sources[0] == "import labkit\n\nlab = labkit.connect()"
    assert sources[1] == f'lab.ready_for("{number}")'
    assert f'lab.check("{number}")' in sources
    markdown = [c.source for c in every if c.cell_type == "markdown"]
    assert any(m.startswith("## Summary") for m in markdown)
    assert any(m.startswith("**Self-check.**") and "<details>" in m for m in markdown)
    following = catalogue.NOTEBOOKS.get(f"{int(number) + 1:02d}", catalogue.NOTEBOOKS["00"])
    assert following in every[-1].source


def test_the_demo_commands_appear_verbatim_on_an_instance() -> None:
    typed = "\n".join(c.source for p in NOTEBOOKS for c in code_cells(p) if c.source.startswith("%%instance"))
    for command in [
        "aws iam list-users",
        "aws iam list-roles",
        "aws iam create-user",
        "aws s3 cp s3://acme-app-data-123456789012/config/settings.json -",
        "aws dynamodb get-item --table-name acme-app-orders",
        "curl http://169.254.169.254/latest/meta-data/iam/security-credentials/DemoRoleForEC2",
        'curl -X PUT "http://169.254.169.254/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600"',
    ]:
        assert command in typed


def test_the_permissions_notebook_reads_the_apps_data_through_the_role() -> None:
    """Notebook 04's committed outputs (nbval holds them to a fresh run): demo-instance is refused the
    bucket's object and the table's item in AWS's words, reads both once the role's inline policy
    allows them, is still refused an upload, and the diagram's AWS APIs box names what it reaches."""
    permissions = shown(NOTEBOOKS[4])
    caller = "arn:aws:sts::123456789012:assumed-role/DemoRoleForEC2/"
    settings = "s3://acme-app-data-123456789012/config/settings.json"
    in_order = [
        f"download failed: {settings} to - An error occurred (403) when calling the HeadObject operation: Forbidden",
        's3:GetObject on resource: "arn:aws:s3:::acme-app-data-123456789012/config/settings.json" because no '
        "identity-based policy allows the s3:GetObject action",
        "An error occurred (AccessDeniedException) when calling the GetItem operation: User: " + caller,
        "dynamodb:GetItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/acme-app-orders because no "
        "identity-based policy allows the dynamodb:GetItem action",
        '{"log_level": "info", "orders_table": "acme-app-orders"}',
        '"S": "shipped"',
        f"upload failed: - to {settings} An error occurred (AccessDenied) when calling the PutObject operation: "
        f"User: {caller}",
        "because no identity-based policy allows the s3:PutObject action",
        "[AWS APIs: dynamodb: GetItem iam: Get*, List* +4 s3: GetObject]",
    ]
    places = [permissions.find(text) for text in in_order]
    assert -1 not in places and places == sorted(places), list(zip(in_order, places, strict=True))


def test_the_challenge_leaves_room_to_work_and_gives_no_solution() -> None:
    """07 states the task and grades it: cells that hold only a comment for the student's work, no
    step of the answer in any cell (code or text), and no hint asked (each one asked is counted)."""
    every = cells(CHALLENGE)
    code = [c.source for c in every if c.cell_type == "code"]
    assert len([source for source in code if only_comments(source)]) >= 2
    written = "\n".join(c.source for c in every)
    for step in [
        "create_role", "put_role_policy", "attach_role_policy", "create_policy", "create_instance_profile",
        "add_role_to_instance_profile", "associate_iam_instance_profile", "modify_instance_metadata_options",
        "create-role", "put-role-policy", "create-instance-profile", "associate-iam-instance-profile",
        "modify-instance-metadata-options", "sts:AssumeRole", "HttpTokens=", "HttpPutResponseHopLimit=",
    ]:  # fmt: skip
        assert step not in written, step
    assert not [source for source in code if "hint(" in source]
    assert "labkit hint 07" in written and "lab.hint()" in written


def test_the_challenge_shows_the_scene_and_grades_it_untouched() -> None:
    """07's committed outputs (nbval holds them to a fresh checkpoint 07): report-server with no role
    and IMDSv1 open, the app's two calls, its failure in AWS's words, and the grade with every item
    ✗ but the last (no key on the instance), the first saying what the app said."""
    server, app, bucket = catalogue.REPORT_SERVER, catalogue.REPORT_APP, catalogue.REPORTS_BUCKET
    typed = [c.source for c in code_cells(CHALLENGE)]
    assert f"%%instance {server}\ncat {app}" in typed and f"%%instance {server}\n{app}" in typed
    outputs = shown(CHALLENGE)
    assert "{'IamInstanceProfile': 'none',\n 'HttpTokens': 'optional',\n 'HttpPutResponseHopLimit': 2}" in outputs
    assert f"aws s3 cp s3://{bucket}/{catalogue.LATEST_REPORT} -" in outputs
    assert f"aws dynamodb put-item --table-name {catalogue.REPORT_TABLE}" in outputs
    failed = f"download failed: s3://{bucket}/{catalogue.LATEST_REPORT} to - Unable to locate credentials"
    assert f"{app}\n{failed}\n[exit status 1]" in outputs
    graded = [o for c in code_cells(CHALLENGE) if c.source == f'lab.check("{catalogue.CHALLENGE}")' for o in c.outputs]
    verdict, *items = graded[0].data["text/plain"].splitlines()
    assert verdict.startswith(f"Notebook 07: {len(items) - 1} of {len(items)} items missing (0 hints used")
    assert [item[0] for item in items] == ["✗"] * (len(items) - 1) + ["✓"] and len(items) > 2
    assert failed in items[0] and items[-1].startswith(f"✓ no access key on {server}")


def test_the_attach_notebook_draws_the_live_diagram() -> None:
    outputs = [o for c in code_cells(NOTEBOOKS[3]) for o in c.outputs if "labkit.diagram" in c.source]
    assert len(outputs) == 2 and all("image/svg+xml" in o.data for o in outputs)


def run_twice(path: Path) -> list[str]:
    """Run All, then Run All again in the same kernel; the names of unexpected errors, in order."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    errors = []
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as error:
                    errors.append(error.ename)
                    break
    return errors


def run_from_the_top(path: Path) -> tuple[int, str, str] | None:
    """Run All in a new kernel, as a student who opens the notebook does; where it stopped and why
    (the cell's index, the error's name and its one line), or None if every cell ran."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                return index, error.ename, error.evalue
    return None


@pytest.mark.slow
def test_every_notebook_runs_again_after_the_whole_series_then_twice_in_a_row(
    lab: labkit.Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the whole series (06's clean-up done), a student runs the notebooks again, each from the
    top. Each runs through, or its first check stops it with one line that says what to type (`labkit
    reset --to NN`). Then, from its own checkpoint, it runs twice in a row in one kernel (Run All, and
    Run All again): every cell can be re-run, but 06, which deletes what it reviews, whose second run
    stops at its first check and says how to start over. One pass over the series for both rules.

    Fails on the code before it: 05's launch, with ClientToken legacy-server-05, returned the
    terminated legacy-server (as EC2 does: EC2 User Guide, "Ensuring idempotency in Amazon EC2 API
    requests"), and its `%%instance legacy-server` cell failed halfway through."""
    monkeypatch.setenv("LABKIT_HOME", str(lab.home))
    lab.reset(to="06")
    solutions.STEPS["06"](lab)
    for path in NOTEBOOKS:
        number = path.name[:2]
        stopped = run_from_the_top(path)
        if stopped is not None:
            first_check = [c.source for c in cells(path)].index(f'lab.ready_for("{number}")')
            index, name, message = stopped
            assert (index, name) == (first_check, "LabNotReady"), (path.name, stopped)
            assert "\n" not in message and f"`labkit reset --to {number}`" in message, message
        lab.reset(to=number)
        assert run_twice(path) == (["LabNotReady"] if number == "06" else []), path.name


def test_the_committed_outputs_show_the_ids_of_a_students_own_run(lab: labkit.Lab) -> None:
    """Each notebook's outputs come from `reset --to` its own number; they must show the instance
    ids a student's one lab shows all along (they showed a new demo-instance id in each notebook)."""
    shown = {
        found
        for path in NOTEBOOKS
        for cell in code_cells(path)
        for output in cell.outputs
        for found in re.findall(r"\bi-[0-9a-f]{17}\b", str(output))
    }
    lab.reset(to="06")
    assert shown == {i.instance_id for i in lab.instances()}
    assert len(shown) == 4  # app-server, demo-instance, web-server, legacy-server


def shown(path: Path) -> str:
    """Everything the committed outputs of a notebook show (checked against a fresh run by nbval)."""
    texts = []
    for cell in code_cells(path):
        for output in cell.outputs:
            texts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def test_the_series_shows_what_the_exam_asks() -> None:
    by_number = {p.name[:2]: p for p in NOTEBOOKS}
    permissions, metadata = shown(by_number["04"]), shown(by_number["05"])
    # the credential provider chain: a leftover ~/.aws/credentials wins over the role, and the CLI says so
    assert "shared-credentials-file" in permissions and "iam-role" in permissions
    assert "arn:aws:iam::123456789012:user/alice" in permissions
    # a role attached at launch
    assert any("run_instances" in c.source and "IamInstanceProfile=" in c.source for c in code_cells(by_number["04"]))
    assert len(set(re.findall(r"assumed-role/DemoRoleForEC2/(i-[0-9a-f]+)", permissions))) == 2  # and web-server
    # the metadata service names the role, and has no path for its policies
    assert "meta-data/iam/\ninfo\nsecurity-credentials/\n" in metadata.replace("\r", "")
    assert '"PolicyName": "IAMReadOnlyAccess"' in metadata
    # Lambda and ECS get their credentials by other routes than the metadata service
    review = "\n".join(c.source for c in cells(by_number["06"]) if c.cell_type == "markdown")
    assert "environment variables" in review and "169.254.170.2" in review and "this way" not in review
