"""Simulated EC2 instances: a machine of its own per instance, as after `ssh ec2-user@...`.

An instance is sealed by the kernel where the host allows user namespaces (the default), else by
its environment: labkit/seal/ says how each keeps it apart, and what a command on it is entered,
started and given. What a command shows is a terminal's view of it (labkit/transcript.py); how it
runs, is stopped with all it started, and reaches the student's terminal, labkit/shell.py. No value
from AWS (a Name tag, an address) is ever written into shell code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from labkit.commands import script, sections, split_commands
from labkit.protocol import REGION, host_name, instance_home
from labkit.seal import Seal
from labkit.seal import of as seal_of
from labkit.shell import anonymous_file, bash, execute, exit_status, on_this_terminal
from labkit.statedir import LabInfo
from labkit.transcript import INTERRUPTED, TIMED_OUT, CommandInterrupted, CommandResult, Transcript

WELCOME = r"""   ,     #_
   ~\_  ####_        Amazon Linux 2023 (simulated by labkit)
  ~~  \_#####\
  ~~     \###|       instance {instance_id}{name}
  ~~       \#/ ___   type `exit` to return to your own shell
   ~~       V~' '->
    ~~~         /
      ~~._.   _/
         _/ _/
       _/m/'
"""
RCFILE = "PS1='[ec2-user@${HOSTNAME} \\W]$ '\n"  # the same for every instance: its values come from the environment


def _printable(text: str) -> str:
    """`text` with what a terminal would act on (a newline, an escape sequence) written out: `\\n`."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class Instance:
    """A running instance of the lab, ready to run commands as `ec2-user`."""

    def __init__(
        self,
        lab_home: Path,
        info: LabInfo | Callable[[], LabInfo],
        instance_id: str,
        *,
        name: str = "",
        private_ip: str = "",
    ) -> None:
        self.lab_home = lab_home
        self._info = info
        self.id = instance_id
        self.name = name
        self.private_ip = private_ip

    def __repr__(self) -> str:
        return f"<Instance {self.id}{f' ({self.name})' if self.name else ''} {self.private_ip}>"

    @property
    def info(self) -> LabInfo:
        """The record of the lab this instance lives in, as it runs now (it may have restarted)."""
        return self._info() if callable(self._info) else self._info

    @property
    def hostname(self) -> str:
        return host_name(_printable(self.private_ip))

    @property
    def prompt(self) -> str:
        return f"[ec2-user@{self.hostname} ~]$"

    @property
    def home(self) -> Path:
        """This instance's home directory (its `~`)."""
        path = instance_home(self.lab_home, self.id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def sealed(self) -> bool:
        """Whether the instance is a machine of its own (`labkit up --sealed`)."""
        return self.info.sealed

    @property
    def seal(self) -> Seal:
        """How this instance is sealed, as its lab runs now (labkit/seal/)."""
        return seal_of(self.lab_home, self.info, self.id)

    def argv(self, *command: str) -> list[str]:
        """The command line that runs `command` on this instance, as ec2-user: as it is on this host
        when the instance is sealed by environment, else entering its namespaces first. Run it with
        environ() and, as its working directory, home."""
        return [*self.seal.entry(), *command]

    def environ(self, seal: Seal | None = None) -> dict[str, str]:
        """The whole environment of a shell on this instance, built from nothing: as over SSH to
        Amazon Linux 2023, and what its seal adds (by environment, the lab's endpoint and proxy).
        `seal`: the instance's seal, when the caller holds it already."""
        seal = seal or self.seal
        shell = {
            "HOME": seal.home,
            "USER": "ec2-user",
            "LOGNAME": "ec2-user",
            "SHELL": "/bin/bash",
            "HOSTNAME": self.hostname,
            "PATH": seal.path,
            "LANG": "C.UTF-8",
            "TERM": os.environ.get("TERM", "xterm-256color"),
            "AWS_DEFAULT_REGION": REGION,
        }
        return {**shell, **seal.environ()}

    def run(self, command: str, *, timeout: float = 300.0) -> CommandResult:
        """Run one shell command line on the instance, as typed at its prompt, and keep what it prints.
        Interrupted, it is stopped and CommandInterrupted raised; past `timeout` seconds, stopped and said."""
        seal = self.seal
        ran = execute(command, self.environ(seal), self.home, timeout, seal.entry(), seal.keeper())
        result = CommandResult(self.prompt, command, ran.code, ran.stdout, ran.stderr)
        if ran.stopped == "interrupted":
            raise CommandInterrupted(replace(result, stopped=INTERRUPTED))
        if ran.stopped:
            return replace(result, stopped=TIMED_OUT.format(seconds=timeout, what="the command"))
        return result

    def run_lines(self, text: str, *, timeout: float = 300.0) -> Transcript:
        """Run each command of `text` in turn in one shell, as if typed at the prompt.

        Shell state carries over (`TOKEN=$(curl ...)` then `curl -H "...: $TOKEN" ...`); each
        command's output and exit status are kept apart. Interrupted, the commands are stopped and
        CommandInterrupted raised (it holds the transcript); past `timeout` seconds, they are stopped
        and the transcript says so, and which commands did not run.
        """
        commands, seal = split_commands(text), self.seal
        ran = execute(script(commands), self.environ(seal), self.home, timeout, seal.entry(), seal.keeper())
        out, err = sections(ran.stdout), sections(ran.stderr)
        results = []
        for number, command in enumerate(commands):
            if number not in out:
                break  # the shell exited before this command (`exit`, say)
            stdout, status = out[number]
            code = int(status) if status is not None else ran.code
            results.append(CommandResult(self.prompt, command, code, stdout, err.get(number, ("", None))[0]))
        if not ran.stopped:
            return Transcript(tuple(results))
        not_run = tuple(commands[len(results) :])
        if results:
            last = results[-1]
            running = out[len(results) - 1][1] is None  # the shell never reached its end
            what = "the command" if running else "something it started in the background"
            note = INTERRUPTED if ran.stopped == "interrupted" else TIMED_OUT.format(seconds=timeout, what=what)
            results[-1] = replace(last, stopped=note)
        transcript = Transcript(tuple(results), not_run)
        if ran.stopped == "interrupted":
            raise CommandInterrupted(transcript)
        return transcript

    def exec(self, command: str) -> int:
        """Run one command line with this terminal's input and output, as `ssh INSTANCE COMMAND`
        does: on a terminal of its own where stdin is a terminal (labkit/relay.py); its exit status."""
        seal = self.seal
        enter, keeper, source = seal.entry(), seal.keeper(), anonymous_file(command)
        try:
            argv = [*enter, *bash(source, stop_at_ctrl_c=False)]
            code = on_this_terminal(keeper, argv, env=self.environ(seal), cwd=self.home, pass_fds=(source,))
        finally:
            os.close(source)
        return exit_status(code)

    def shell(self) -> int:
        """An interactive login-like shell on the instance; returns when the student types `exit`.

        The welcome is printed here and the prompt reads $HOSTNAME when bash shows it: no value
        from AWS (a Name tag, an address) is ever written into the shell's startup file."""
        name = f" ({_printable(self.name)})" if self.name else ""
        seal = self.seal
        enter, keeper = seal.entry(), seal.keeper()
        source = anonymous_file(RCFILE)  # the startup file reaches bash as an inherited descriptor
        sys.stdout.write(WELCOME.format(instance_id=_printable(self.id), name=name))
        sys.stdout.flush()
        try:
            argv = [*enter, "bash", "--noprofile", "--rcfile", f"/dev/fd/{source}", "-i"]
            code = on_this_terminal(keeper, argv, env=self.environ(seal), cwd=self.home, pass_fds=(source,))
        finally:
            os.close(source)
        return exit_status(code)
