"""The `labkit` command: start, inspect, reset and stop a lab, and log in to its instances."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from labkit.catalogue import CHALLENGE, NOTEBOOKS, checkpoint
from labkit.challenge import last_grade
from labkit.challenge.record import said as challenge_said
from labkit.errors import LabError
from labkit.lab import down, running_info, up
from labkit.lesson import Lab, connect
from labkit.protocol import valid_delay
from labkit.report import read_status, status_report
from labkit.solutions import before
from labkit.statedir import lab_home

EPILOG = """examples:
  labkit up                          start the lab (or find the running one)
  labkit up --iam-delay 10           one whose IAM changes take 10 s to reach instances, as on AWS
  labkit up --no-sealed              one whose instances are shells sealed by environment only
  labkit status                      what the lab holds, and how far its student got
  labkit status --json               the same, for scripts
  eval "$(labkit env)"               make this terminal's aws act as the lab's administrator
  labkit ssh demo-instance           log in to an instance (by id or Name tag)
  labkit ssh i-0abc -- aws iam list-users
  labkit reset                       back to a freshly bootstrapped lab (asks first; --yes does not)
  labkit reset --to 03               as a student who finished notebooks 00-02 has it
  labkit check 03                    does the lab hold what notebook 03 builds?
  labkit check 07                    grade the challenge (notebook 07), item by item
  labkit hint 07                     the challenge's next hint (counted in its grade)
  labkit down                        stop the lab

The lab lives in $LABKIT_HOME (default ~/.local/state/labkit)."""


def _seconds(text: str) -> float:
    """`--iam-delay`: seconds, from 0 to MAX_IAM_DELAY (labkit.protocol.valid_delay), in argparse's words."""
    try:
        return valid_delay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _delay_said(delay: float) -> str:
    """What a lab's IAM delay means, in a few words."""
    return f"role policy changes reach role sessions, and new instance profiles EC2, {delay:g} s later, as on AWS"


def _cmd_up(args: argparse.Namespace) -> int:
    if running_info(lab_home()) is None:
        print("Starting the lab (a few seconds)…", flush=True)
    info, started = up(iam_delay=args.iam_delay, sealed=args.sealed)
    verb = "Started" if started else "Already running:"
    print(f"{verb} lab {info.pid} at {info.api_url} (state in {lab_home()})")
    if started and info.restoration():
        print(info.restoration())
    if not started and args.iam_delay is not None and args.iam_delay != info.iam_delay:
        print(
            f"labkit: this lab runs with --iam-delay {info.iam_delay:g}; a lab takes its delay when it starts: "
            f"`labkit down`, then `labkit up --iam-delay {args.iam_delay:g}`.",
            file=sys.stderr,
        )
        return 1
    if not started and args.sealed is not None and args.sealed != info.seal_asked:
        print(
            f"labkit: this lab runs {'without' if args.sealed else 'with'} --no-sealed; a lab takes it when it "
            f"starts: `labkit down`, then `labkit up {'--sealed' if args.sealed else '--no-sealed'}`.",
            file=sys.stderr,
        )
        return 1
    if info.iam_delay:
        print(f"IAM delay: {info.iam_delay:g} s ({_delay_said(info.iam_delay)}; `--iam-delay 0` turns it off).")
    if info.seal_note:  # not sealed by the kernel: one line, why
        print(f"labkit: {info.seal_note}.")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    print("Stopped the lab." if down() else f"No lab was running for {lab_home()}.")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    home = lab_home()
    if args.json:
        data = status_report(home)
        print(json.dumps(data, indent=2 if data["running"] else None))
        return 0 if data["running"] else 1
    info = running_info(home)
    if info is None:
        print(f"No lab is running for {home}. Start it with `labkit up`.")
        return 1
    read = read_status(Lab(home, info))  # a part it cannot read is one line saying why (labkit/report.py)
    status, progress, unreadable = read.status, read.progress, read.unreadable
    since = datetime.fromtimestamp(info.started_at, UTC).astimezone()
    print(f"Lab {status.pid} running at {status.api_url} since {since:%Y-%m-%d %H:%M} (state in {status.home})")
    print(f"  users:     {unreadable.get('users') or ', '.join(status.users) or '-'}")
    print(f"  roles:     {unreadable.get('roles') or ', '.join(status.roles) or '-'}")
    print(f"  sealing:   {info.sealing()}")  # labkit/labprocess/sandbox.py
    if info.iam_delay:  # labkit up --iam-delay (labkit/labprocess/propagation.py)
        print(f"  IAM delay: {info.iam_delay:g} s ({_delay_said(info.iam_delay)})")
    if status.journal.get("broken") or status.journal.get("problem"):
        print(f"  journal:   {status.journal.get('broken') or status.journal.get('problem')}")
    if info.fixes_missing:  # the installed moto lacks what these changes need (labkit/labprocess/motofixes)
        print(f"  not applied to this moto: {', '.join(info.fixes_missing)} (why: lab.log in {status.home})")
    if "instance profiles" in unreadable:
        print(f"  instance profiles: {unreadable['instance profiles']}")
    instances = unreadable.get("instances") or ("" if status.instances else "-")
    print(f"  instances: {instances}".rstrip())
    for inst in status.instances:
        role = status.role_of(inst)
        profile = inst.instance_profile_arn.rsplit("/", 1)[-1] if inst.instance_profile_arn else None
        held = f"role {role} (profile {profile})" if role else f"profile {profile}, no role" if profile else "no role"
        if profile and "instance profiles" in unreadable:
            held = f"profile {profile}, its role not known"
        print(f"    {inst.instance_id}  {inst.name or '-':<16} {inst.state:<11} {inst.private_ip:<15} {held}")
    graded = last_grade(home)
    if graded is not None:
        print(f"  challenge: {challenge_said(graded)}")
    if progress is None:
        print(f"Progress: {unreadable['progress']}")
        return 0
    ready = f"; ready for {NOTEBOOKS[progress.next]}" if progress.next else ""
    print(f"Progress: finished {progress.finished}{ready}")
    for number, report in progress.reports.items():
        if progress.done(number):
            note = "" if report.ok else "done (later notebooks changed what it built)"
        else:
            note = f"missing: {'; '.join(c.item for c in report.missing)}"
        print(f"  {'✓' if progress.done(number) else '✗'} {NOTEBOOKS[number]:<28} {note}".rstrip())
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    with contextlib.redirect_stdout(sys.stderr):  # `eval "$(labkit env)"` reads shell code only
        lab = connect()
    print("unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE")
    for name, value in lab.env().items():
        print(f"export {name}={shlex.quote(value)}")
    print('export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"')
    print('# Run: eval "$(labkit env)"')
    return 0


def _confirmed(question: str) -> bool:
    """Ask on a terminal; scripts (no terminal) are not asked."""
    if not sys.stdin.isatty():
        return True
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _cmd_reset(args: argparse.Namespace) -> int:
    home = lab_home()
    target = f"checkpoint {checkpoint(args.to)}" if args.to is not None else "a freshly bootstrapped lab"
    if not args.yes and not _confirmed(f"Wipe the lab in {home} and put it back to {target}?"):
        print("Nothing was changed.")
        return 1
    lab = connect()
    if args.to is None:
        seconds = lab.reset()
        print(f"Reset the lab to a freshly bootstrapped one in {seconds:.2f} s.")
        return 0
    name = checkpoint(args.to)
    seconds = lab.reset(to=name, say=True)
    done = f"replayed notebooks {', '.join(before(name))}" if before(name) else "nothing to replay"
    done += ", then set the challenge's scene" if name == CHALLENGE else ""
    print(f"Reset the lab to checkpoint {name} (ready for {NOTEBOOKS[name]}; {done}) in {seconds:.2f} s.")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    report = connect(start=False).check(args.notebook)
    print(report)
    return 0 if report.ok else 1


def _cmd_hint(args: argparse.Namespace) -> int:
    print(connect(start=False).hint(args.notebook))
    return 0


@contextlib.contextmanager
def _ctrl_c_for_the_instance() -> Iterator[None]:
    """While an instance's shell runs on this terminal, Ctrl-C is the instance's, as over ssh: labkit
    passes it on to the command's own terminal (labkit/relay.py), the command ends as it does, and
    labkit waits and exits with its status (130), no traceback."""
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)  # reset to default in the shell
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _cmd_ssh(args: argparse.Namespace) -> int:
    instance = connect(start=False).instance(args.instance)
    with _ctrl_c_for_the_instance():
        if args.command:
            return instance.exec(" ".join(args.command))
        return instance.shell()


EXAMPLES = {
    "up": "labkit up\nLABKIT_HOME=~/labs/second labkit up      # a second, separate lab\n"
    "labkit up --iam-delay 10                   # IAM changes take 10 s to reach instances, as on AWS\n"
    "labkit down; labkit up --iam-delay 0       # at once again (the default)",
    "down": "labkit down",
    "status": "labkit status\nlabkit status --json | python3 -m json.tool",
    "env": 'eval "$(labkit env)"\naws iam list-roles                         # now as the lab\'s administrator',
    "reset": "labkit reset                # asks first on a terminal\n"
    "labkit reset --yes --to 04   # ready for notebook 04",
    "check": "labkit check 03             # exit status 0 when everything is there\n"
    "labkit check 07             # the challenge: runs report-server's app, grades each item",
    "hint": "labkit hint 07              # one more hint each time; the grade counts them",
    "ssh": "labkit ssh demo-instance\nlabkit ssh i-0abc1234 -- aws sts get-caller-identity\n"
    "labkit ssh demo-instance -- ec2-metadata --instance-id",
}


def _subcommand(sub: Any, name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's word
    return sub.add_parser(  # type: ignore[no-any-return]
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog="examples:\n  " + EXAMPLES[name].replace("\n", "\n  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="Run the IAM-roles-for-EC2 lab: emulated AWS on loopback, simulated instances.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--user", metavar="USER", help="(root only) act on USER's own lab, as USER: `labkit --user alice status`"
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    up_command = _subcommand(sub, "up", "start the lab in the background (reuse it if it runs)")
    up_command.add_argument(
        "--iam-delay",
        type=_seconds,
        metavar="SECONDS",
        help="a lab it starts makes role policy changes reach role sessions, and new instance profiles EC2, "
        "this late, as AWS may (default: the delay this lab last started with, else 0: at once)",
    )
    up_command.add_argument(
        "--sealed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a lab it starts makes each instance a machine of its own, sealed by the kernel in namespaces, "
        "where the host allows it (default: as this lab last started, else yes); --no-sealed: a shell "
        "sealed by its environment only",
    )
    up_command.set_defaults(run=_cmd_up)
    _subcommand(sub, "down", "stop the lab; its journal stays, so `labkit up` restores it").set_defaults(run=_cmd_down)
    status = _subcommand(sub, "status", "whether the lab runs, where, what it holds, and how far the student got")
    status.add_argument("--json", action="store_true", help="the same, as JSON for scripts")
    status.set_defaults(run=_cmd_status)
    _subcommand(sub, "env", "print export lines for a terminal's own aws").set_defaults(run=_cmd_env)
    reset = _subcommand(sub, "reset", "wipe the lab back to a fresh one, or to a notebook's checkpoint")
    reset.add_argument("--to", metavar="NN", help="the notebook to be ready for: replay the notebooks before it")
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(run=_cmd_reset)
    check = _subcommand(sub, "check", "whether the lab holds what notebook NN builds")
    check.add_argument("notebook", metavar="NN", help=f"notebook number, 00 to {max(NOTEBOOKS)}")
    check.set_defaults(run=_cmd_check)
    hint = _subcommand(sub, "hint", "the next hint for the challenge, notebook 07 (each one shown is counted)")
    hint.add_argument("notebook", metavar="NN", help="07, the challenge")
    hint.set_defaults(run=_cmd_hint)
    ssh = _subcommand(sub, "ssh", "a shell on an instance, or one command with -- COMMAND")
    ssh.add_argument("instance", help="instance id or Name tag")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run instead of a shell (after --)")
    ssh.set_defaults(run=_cmd_ssh)
    return parser


def _without_user(argv: Sequence[str]) -> list[str]:
    """The arguments with the global `--user USER` (or `--user=USER`) taken out."""
    rest = list(argv)
    for index, word in enumerate(rest):
        if word == "--user":
            return rest[:index] + rest[index + 2 :]
        if word.startswith("--user="):
            return rest[:index] + rest[index + 1 :]
    return rest


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[0] == "--":
        args.command = args.command[1:]
    try:
        if args.user is not None:
            from labkit.foruser import run_as

            return run_as(args.user, _without_user(argv))
        return int(args.run(args))
    except LabError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            code = _run(list(sys.argv[1:] if argv is None else argv))
        except SystemExit as stop:  # argparse after --help, or a usage error it has explained
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `labkit status | head -1`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
