"""A warm `aws` CLI for the lab's instances: the same program, without paying its start-up each time.

    python -m labkit.labprocess.cliserver SOCKET LAB_PID API_PORT,IMDS_PORT [CONTROL_FD]
        (started by the lab process; it ends with it)

A fresh `aws` process spends most of its time importing the CLI and reading botocore's JSON models.
This server does that once, then forks a child per command. The instance's `aws` (a few lines, see
`client_script`) sends its arguments, environment and working directory, and hands over its own
stdin, stdout and stderr; the child takes them over and runs exactly what the `aws` script runs,
`awscli.clidriver.main()`, then reports the exit status. Each child starts from a pristine copy of
the warm process, so no command sees another's state. When the server is not there, the client
runs the real `aws` instead: the result is the same, only slower.

The server knows which instance a command comes from by something the instance can neither forge
nor outlive, never by a process id, and the command joins it there (labkit/seal/):

- sealed by the kernel: the socket the client came through. Each sandbox makes its own
  /run/labkit/aws.sock, reachable from that instance alone, and the lab hands it here (CONTROL_FD)
  with the descriptors of the sandbox's namespaces, which the command joins (`kernel.join`);
- sealed by environment (SOCKET, in the state directory): the instance's identity file, which the
  client hands over open for reading; the command runs in that instance's fence (`environment.join`).

A client that cannot be placed is refused in one line and nothing runs. So is a request over 1 MiB
(before it is read), a malformed one, and one past the number of commands the server holds at once,
per instance and in all; what the refusals say reaches lab.log at most once a minute.
The server holds no secret of the lab's (its ports come on its command line, its environment is
the few variables Python and the CLI read): a command's child processes may read its memory.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import mmap
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any

from labkit.labprocess import motofixes
from labkit.labprocess.aws_request import receive, refuse
from labkit.labprocess.motofixes.warm_aws import CLI_DATA_DIRS
from labkit.seal import Joins
from labkit.seal.descriptors import close_all
from labkit.seal.environment import EnvironmentJoin
from labkit.seal.kernel import KernelJoin
from labkit.seal.refused import Refused

WARM_SERVICES = ("iam", "sts", "ec2")
# Warmed in the server only once an instance first asks for them (a child says so through a pipe):
# a lab whose student never touches S3 or DynamoDB keeps the server as small as before.
LATER_SERVICES = {"s3": "s3", "s3api": "s3", "dynamodb": "dynamodb"}  # the command's first word → service


def warm() -> Any:
    """Import the CLI, apply the warm aws's changes to botocore (motofixes, `apply(CLI)`), and read,
    once, the botocore data a lesson's commands need; returns the CLI driver, to warm more services
    with later (`warm_service`). Raises motofixes.RequiredFixMissing when one it cannot do without is
    missing from the installed botocore."""
    import awscli.clidriver

    motofixes.apply(motofixes.CLI)
    driver = awscli.clidriver.create_clidriver()
    loader = driver.session.get_component("data_loader")
    CLI_DATA_DIRS.update(path for path in loader.search_paths if os.path.isdir(path))
    driver._get_command_table()
    for service in WARM_SERVICES:
        warm_service(driver, service)
    import awscli.formatter  # noqa: F401 - the output formatters every command loads
    import awscli.table  # noqa: F401

    return driver


def warm_service(driver: Any, service: str) -> None:
    """Read a service's botocore data once, and import and prime what creating its client needs
    (nothing is sent), so that every command forked after gets them for free."""
    loader = driver.session.get_component("data_loader")
    driver.session.get_service_model(service)
    for kind in ("paginators-1", "waiters-2", "endpoint-rule-set-1"):
        try:
            loader.load_service_model(service, kind)
        except Exception:  # noqa: S112 - a service without waiters, say
            continue
    driver.session.create_client(
        service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="warm-up", aws_secret_access_key="warm-up",
    )  # fmt: skip


def paths_from_home(home: str) -> list[tuple[Any, str | None]]:
    """Where the warm CLI holds paths it computed from HOME when it was imported (caches, models,
    history): (owner, attribute) for strings in modules and classes, (function, None) for functions
    with such a default. Found once, in the server, since every child starts from the same state.
    With `repoint`, the change recorded as motofixes `paths_follow_each_commands_home`."""
    prefix = home.rstrip("/") + "/"
    found: list[tuple[Any, str | None]] = []

    def note_defaults(member: Any) -> None:
        function = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
        if not isinstance(function, types.FunctionType):  # touch nothing else (six's lazy modules, say)
            return
        if any(isinstance(d, str) and d.startswith(prefix) for d in function.__defaults__ or ()):
            found.append((function, None))

    for name, module in list(sys.modules.items()):
        if not name.startswith(("awscli", "botocore", "s3transfer")) or ".vendored" in name or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, str):
                if value.startswith(prefix):
                    found.append((module, attribute))
            elif isinstance(value, type) and value.__module__ == name:
                for key, member in list(vars(value).items()):
                    if isinstance(member, str):
                        if member.startswith(prefix):
                            found.append((value, key))
                    else:
                        note_defaults(member)
            else:
                note_defaults(value)
    return found


def repoint(places: list[tuple[Any, str | None]], old_home: str, new_home: str) -> None:
    """Make the paths at `places` follow the command's own HOME, as in a fresh process."""
    prefix = old_home.rstrip("/") + "/"

    def moved(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(prefix):
            return new_home.rstrip("/") + "/" + value[len(prefix) :]
        return value

    for owner, attribute in places:
        if attribute is None:
            owner.__defaults__ = tuple(moved(d) for d in owner.__defaults__)
        else:
            setattr(owner, attribute, moved(getattr(owner, attribute)))


def _exit_status(code: Any) -> int:
    """The exit status `sys.exit(code)` gives a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


MAX_PER_INSTANCE = 8  # commands the server holds at once for one instance (all of the environment seal's: one)
MAX_IN_ALL = 32  # and in all
LOG_EVERY = 60.0  # seconds: at most one line of refusals in lab.log


class _Log:
    """Lines for lab.log, at most one per LOG_EVERY seconds across the server and all its children."""

    def __init__(self) -> None:
        self.last = mmap.mmap(-1, 8)  # shared with every child forked after it
        self.last[:] = struct.pack("d", 0.0)

    def line(self, text: str) -> None:
        now = time.monotonic()
        if now - struct.unpack("d", self.last[:])[0] < LOG_EVERY:
            return
        self.last[:] = struct.pack("d", now)
        with contextlib.suppress(OSError):
            os.write(2, f"labkit: warm aws: {text}\n".encode(errors="replace"))


PASSED_ON = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # what the client passes on from its terminal


def _end_with_the_client(connection: socket.socket) -> None:
    """In the forked child: after its request the client sends only the signals its terminal sent
    it (one byte each), which the command takes as its own; the connection ends only when the client
    does. If that happens before the command has finished (the client was killed, say by a timeout
    that killed its process group), the command ends too, as `aws` would."""
    try:
        while data := connection.recv(16):
            for number in data:
                if number in PASSED_ON:
                    os.kill(os.getpid(), number)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Place:
    """Where one listener's clients are: an instance sealed by the kernel (its id, and the descriptors
    of its sandbox's namespaces, labkit/seal/sandbox_init.py: NAMESPACES, then the nested user namespace), or
    (`instance_id` None) the instances sealed by environment, each proving itself by its identity file."""

    listener: socket.socket
    instance_id: str | None  # None: the instances sealed by environment
    joins: Joins
    running: set[int] = field(default_factory=set)  # the children serving it now

    def close(self) -> None:
        self.listener.close()
        self.joins.close()


def _run(
    connection: socket.socket,
    home_paths: list[tuple[Any, str | None]],
    place: Place,
    log: _Log,
    asks: int = -1,
) -> None:
    """In the forked child: become the client's `aws` process, run the command, report its status.
    `place`: where the client is, and how to join its instance."""
    import awscli
    import awscli.clidriver

    status, taken = 255, False
    try:
        try:
            request, fds = receive(connection)
            fds, identity = fds[:3], fds[3:]
            # before any thread: setns needs a lone one, and Landlock fences the calling thread only
            place.joins.join(identity, held=[*fds, connection.fileno()])
        except Refused as refused:
            log.line(str(refused))
            refuse(connection, str(refused))
            os._exit(255)
        first = (request.get("argv") or [""])[0]
        if asks >= 0 and first in LATER_SERVICES:  # the server warms it for the next commands
            with contextlib.suppress(OSError):
                os.write(asks, f"{first}\n".encode())
        # the command runs: its pid (inside a sealed instance, the one it has there) tells the client so
        connection.sendall(struct.pack(">i", os.getpid()))
        # The watcher thread blocks the signals a terminal sends: the kernel hands a process's signal
        # to any thread that does not, and one the watcher took would never interrupt the command.
        signal.pthread_sigmask(signal.SIG_BLOCK, PASSED_ON)
        threading.Thread(target=_end_with_the_client, args=(connection,), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PASSED_ON)  # the thread keeps the mask it started with
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        taken = True  # from here on, fd 2 is the client's stderr: lab.log is out of the command's reach
        try:
            os.chdir(request["cwd"])
        except OSError as error:
            print(f"aws: the lab could not run this command in {request['cwd']}: {error.strerror}", file=sys.stderr)
            raise SystemExit(255) from None
        warm_home = os.environ.get("HOME", "")
        os.environ.clear()
        os.environ.update(request["env"])
        if os.environ.get("LC_CTYPE", "") == "UTF-8":  # as the aws script does
            os.environ["LC_CTYPE"] = "en_US.UTF-8"
        data_path = [  # as `import awscli` does, from this command's environment
            os.path.expanduser(os.path.expandvars(p))
            for p in os.environ.get("AWS_DATA_PATH", "").split(os.pathsep)
            if p
        ]
        data_path.append(os.path.join(os.path.dirname(os.path.abspath(awscli.__file__)), "data"))
        os.environ["AWS_DATA_PATH"] = os.pathsep.join(data_path)
        repoint(home_paths, warm_home, os.environ.get("HOME", "/"))
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own streams
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
        sys.argv = [os.path.join(os.path.dirname(sys.executable), "aws"), *request["argv"]]
        random.seed()
        try:
            status = _exit_status(awscli.clidriver.main())  # what `sys.exit(main())` makes of it
        except SystemExit as done:
            status = _exit_status(done.code)
        except KeyboardInterrupt:
            status = 130
        atexit._run_exitfuncs()  # as a process does at exit (colorama resets the terminal's colours)
        sys.stdout.flush()
        sys.stderr.flush()
    except SystemExit as done:
        status = _exit_status(done.code)
    except BaseException as error:  # noqa: BLE001 - the child must report a status whatever happens
        said = f"{type(error).__name__}: {error}".splitlines()[0]
        if not taken:
            log.line(said)
            refuse(connection, said)
            os._exit(255)
        with contextlib.suppress(OSError):
            os.write(2, f"aws: the lab could not run this command ({said})\n".encode())
        status = 255
    finally:
        try:
            connection.sendall(struct.pack(">i", int(status)))
        finally:
            os._exit(int(status) & 0xFF)


def _listener(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    return listener


def _told(control: socket.socket, places: dict[int, Place]) -> bool:
    """A message from the lab: an instance sealed by the kernel to serve (its socket, then its
    namespaces' descriptors), or one gone. False once the lab has closed its end."""
    try:
        message, fds, _, _ = socket.recv_fds(control, 4096, 16)
    except OSError:
        return True
    if not message:
        return False
    try:
        said = json.loads(message)
        instance_id = str(said["instance"])
    except (ValueError, KeyError, TypeError):
        close_all(fds)
        return True
    for key, place in list(places.items()):
        if place.instance_id == instance_id:
            del places[key]
            place.close()
    if fds:
        listener = socket.socket(fileno=fds[0])
        places[listener.fileno()] = Place(listener, instance_id, KernelJoin(fds[1:]))
    return True


def serve(path: str, lab: int, ports: tuple[int, ...], control_fd: int | None = None) -> None:
    """Warm up, then fork a child per command until the lab process `lab`, our parent, is gone.
    `ports`: the lab's API and metadata ports, all the TCP a fenced command may reach.
    `control_fd`: where the lab hands over the sockets of instances sealed by the kernel."""
    control = socket.socket(fileno=control_fd) if control_fd is not None else None
    if os.getppid() != lab:  # it died while we were starting
        return
    try:
        driver = warm()
    except motofixes.RequiredFixMissing as error:  # instances then run the plain aws CLI
        print(error, flush=True)
        return
    gc.freeze()  # what warming made stays out of every child's collections (and its pages shared)
    warmed: set[str] = set()  # of LATER_SERVICES
    asked_r, asked_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # where children name the services they need
    home_paths = paths_from_home(os.environ.get("HOME", ""))
    log = _Log()
    environment = Place(_listener(path), None, EnvironmentJoin(os.path.dirname(path), ports))
    places: dict[int, Place] = {environment.listener.fileno(): environment}
    children: dict[int, Place] = {}
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below, through the pipe
    while os.getppid() == lab:
        with contextlib.suppress(ChildProcessError):
            while (ended := os.waitpid(-1, os.WNOHANG)[0]) > 0:
                if (served := children.pop(ended, None)) is not None:
                    served.running.discard(ended)
        watched = [p.listener for p in places.values()] + ([control] if control else []) + [wake_r, asked_r]
        ready, _, _ = select.select(watched, [], [], 1.0)
        if wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(wake_r, 4096)
        if asked_r in ready:
            with contextlib.suppress(OSError):
                for word in os.read(asked_r, 4096).decode(errors="replace").split():
                    service = LATER_SERVICES.get(word)
                    if service is not None and service not in warmed:
                        warmed.add(service)
                        warm_service(driver, service)
                        home_paths = paths_from_home(os.environ.get("HOME", ""))  # what it computed from HOME too
                        gc.freeze()
        if control is not None and control in ready and not _told(control, places):
            control.close()
            control = None
        for listener in ready:
            if not isinstance(listener, socket.socket) or listener.fileno() not in places:
                continue
            place = places[listener.fileno()]
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            most = MAX_PER_INSTANCE if place.instance_id else MAX_IN_ALL
            if len(place.running) >= most or len(children) >= MAX_IN_ALL:
                who = f"instance {place.instance_id}" if place.instance_id else "instances sealed by environment"
                why = f"{who} already runs {len(place.running)} commands at once, and the lab runs {len(children)}"
                log.line(why)
                refuse(connection, f"too many commands at once ({why}); wait for one to end, or stop one with Ctrl-C")
                connection.close()
                continue
            child = os.fork()
            if child == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                os.close(asked_r)
                for other in places.values():  # no command holds another instance's socket or namespaces
                    if other is not place:
                        other.close()
                place.listener.close()
                if control is not None:
                    control.close()
                connection.settimeout(None)
                _run(connection, home_paths, place, log, asked_w)
            children[child] = place
            place.running.add(child)
            connection.close()
    os.unlink(path)


if __name__ == "__main__":
    control = int(sys.argv[4]) if len(sys.argv) > 4 else None
    serve(sys.argv[1], int(sys.argv[2]), tuple(int(port) for port in sys.argv[3].split(",")), control)
