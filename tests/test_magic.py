"""`%%instance` cells: Python values filled in, whole commands, one shell, a terminal's view."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import IPython
import pytest

import labkit
from conftest import Demo, imds_get
from labkit import magic
from labkit.commands import split_commands
from labkit.magic import expand, instance_magic


def test_python_values_in_braces_are_filled_in() -> None:
    namespace = {"key_id": "AKIAEXAMPLE", "key": {"Secret": "s3cr3t"}, "box": type("B", (), {"id": "i-1"})()}
    assert expand("aws configure set aws_access_key_id {key_id}", namespace).endswith("AKIAEXAMPLE")
    assert expand('echo {key["Secret"]} {box.id}', namespace) == "echo s3cr3t i-1"


@pytest.mark.parametrize("shell", ["awk '{print $1}'", "echo ${HOME} {unknown}", "echo {a,b}", "echo {}"])
def test_shell_braces_are_left_as_typed(shell: str) -> None:
    assert expand(shell, {"print": print}) == shell


def test_a_cell_splits_into_whole_commands() -> None:
    cell = 'echo one\n\nfor p in a b; do\n  echo "$p"\ndone\necho two \\\n  three\ncat <<EOF\nx\nEOF\n'
    assert split_commands(cell) == ["echo one", 'for p in a b; do\n  echo "$p"\ndone', "echo two \\\n  three",
                                    "cat <<EOF\nx\nEOF"]  # fmt: skip


def test_commands_share_one_shell_and_keep_their_own_output(demo: Demo) -> None:
    transcript = demo.box.run_lines("NAME=world\necho hello $NAME\nls /nonexistent\nexit 3\necho never")
    assert [(r.command, r.exit_code, r.stdout, r.stderr != "") for r in transcript.results] == [
        ("NAME=world", 0, "", False),
        ("echo hello $NAME", 0, "hello world\n", False),
        ("ls /nonexistent", 2, "", True),
        ("exit 3", 3, "", False),
    ]
    assert not transcript.ok


def test_programs_see_a_terminal_as_over_ssh(demo: Demo) -> None:
    result = demo.box.run(
        "test -t 1 && echo tty; " + imds_get("http://169.254.169.254/latest/meta-data/instance-id", "")
    )
    assert result.stdout == f"tty\n{demo.instance_id}"
    assert result.stderr == ""  # curl draws no progress meter on a terminal


def test_a_transcript_shows_continuation_lines_as_a_terminal_does(demo: Demo) -> None:
    transcript = demo.box.run_lines("for i in 1 2; do\n  echo $i\ndone")
    assert str(transcript) == f"{demo.box.prompt} for i in 1 2; do\n>   echo $i\n> done\n1\n2"


def test_the_magic_runs_on_the_named_instance(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    instance_magic(demo.lab, "demo-instance", "echo {greeting}", {"greeting": "hi"})
    assert capsys.readouterr().out.strip() == f"{demo.box.prompt} echo hi\nhi"


def test_the_magic_without_an_instance_says_how_to_use_it(lab: labkit.Lab, capsys: pytest.CaptureFixture[str]) -> None:
    instance_magic(lab, "", "aws iam list-users")
    assert capsys.readouterr().out.startswith("Usage: %%instance INSTANCE")


class Shell:
    """What `magic.register` uses of an IPython shell: its namespace, its magics, its error display."""

    def __init__(self, user_ns: dict[str, Any]) -> None:
        self.user_ns = user_ns
        self.cell_magics: dict[str, Callable[[str, str], None]] = {}

    def register_magic_function(self, function: Callable[[str, str], None], magic_kind: str, magic_name: str) -> None:
        assert magic_kind == "cell"
        self.cell_magics[magic_name] = function

    def set_custom_exc(self, exc_tuple: tuple[type[BaseException], ...], handler: Any) -> None:
        pass


def test_the_magic_runs_on_the_lab_registered_last(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each `labkit.connect()` registers `%%instance` for its own lab: one connected before, and
    stopped since, does not keep the magic."""
    shell = Shell({"greeting": "hi"})
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    stopped = labkit.Lab(tmp_path, demo.lab.info)  # no lab runs for tmp_path
    magic.register(stopped)
    with pytest.raises(labkit.LabNotRunning):
        shell.cell_magics["instance"]("demo-instance", "echo {greeting}")
    magic.register(demo.lab)
    shell.cell_magics["instance"]("demo-instance", "echo {greeting}")
    assert capsys.readouterr().out.strip() == f"{demo.box.prompt} echo hi\nhi"
