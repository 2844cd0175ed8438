"""A warm `aws` CLI for the lab's instances: the same program, without paying its start-up each time.

    python -m labkit.labprocess.cliserver SOCKET LAB_PID API_PORT,IMDS_PORT [SEALED_SOCKET]
        (started by the lab process; it ends with it)

A fresh `aws` process spends most of its time importing the CLI and reading botocore's JSON models.
This server does that once, then forks a child per command. The instance's `aws` (a few lines, see
`client_script`) sends its arguments, environment and working directory, and hands over its own
stdin, stdout and stderr; the child takes them over and runs exactly what the `aws` script runs,
`awscli.clidriver.main()`, then reports the exit status. Each child starts from a pristine copy of
the warm process, so no command sees another's state. When the server is not there, the client
runs the real `aws` instead: the result is the same, only slower.

A command from an instance sealed by environment runs in the Landlock fence of that instance
(labkit/fence.py), as its own `aws` would: the client proves which instance it runs on by handing
over that instance's identity file, open; without it, the command may write nothing but /tmp.
The server holds no secret of the lab's (its ports come on its command line, its environment is
the few variables Python and the CLI read): a command's child processes may read its memory.
"""

from __future__ import annotations

import array
import atexit
import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import types
from pathlib import Path
from typing import Any

from labkit import fence
from labkit.labprocess import motofixes
from labkit.labprocess.motofixes.warm_aws import CLI_DATA_DIRS
from labkit.protocol import CLI_SERVER_USER_HOME, HEADER

WARM_SERVICES = ("iam", "sts", "ec2")


def warm() -> None:
    """Import the CLI, apply the warm aws's changes to botocore (motofixes, `apply(CLI)`), and read,
    once, the botocore data a lesson's commands need. Raises motofixes.RequiredFixMissing when one
    it cannot do without is missing from the installed botocore."""
    import awscli.clidriver

    motofixes.apply(motofixes.CLI)
    driver = awscli.clidriver.create_clidriver()
    loader = driver.session.get_component("data_loader")
    CLI_DATA_DIRS.update(path for path in loader.search_paths if os.path.isdir(path))
    for service in WARM_SERVICES:
        driver.session.get_service_model(service)
        for kind in ("paginators-1", "waiters-2", "endpoint-rule-set-1"):
            try:
                loader.load_service_model(service, kind)
            except Exception:  # noqa: S112 - a service without waiters, say
                continue
    driver._get_command_table()
    for service in WARM_SERVICES:  # import and prime what creating a client needs; nothing is sent
        driver.session.create_client(
            service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="warm-up", aws_secret_access_key="warm-up",
        )  # fmt: skip
    import awscli.formatter  # noqa: F401 - the output formatters every command loads
    import awscli.table  # noqa: F401


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


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, ancillary, _, _ = connection.recvmsg(1 << 16, socket.CMSG_SPACE(4 * array.array("i").itemsize))
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = connection.recv(1 << 16)
        if not more:
            raise ConnectionError("the client went away")
        data += more
    return json.loads(data[HEADER.size :]), list(fds)


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


def _fence_the_command(lab_home: str, ports: tuple[int, ...], identity: list[int]) -> None:
    """In the forked child, for a client in an instance sealed by environment (or in none): enter
    the Landlock fence of the instance whose identity file the client handed over (labkit/fence.py),
    or, without one, the fence of no instance. Nothing where the kernel has no Landlock."""
    home = Path(lab_home)
    instance = fence.proven_instance(home, identity[0]) if identity else None
    for fd in identity:
        os.close(fd)
    fenced = fence.build(home, instance, ports=ports, homes=(os.environ.get(CLI_SERVER_USER_HOME, ""),))
    if fenced is not None:
        fenced.apply()


NS_GET_PARENT = 0xB702  # ioctl on a namespace: its parent user namespace
CLONE_NEWUSER = 0x10000000


def _enter_the_clients_instance(connection: socket.socket) -> bool:
    """In the forked child, for a client in a sealed instance (labprocess/sandbox.py): join its
    namespaces as its `aws` process would be in them: the sandbox's user namespace (the lab's user
    owns it), its mount, UTS, IPC and network namespaces, then the nested one where the lab's user
    is ec2-user, with no capability left. Returns whether it did; a client in this process's own
    user namespace (an instance sealed by environment) is served as ever. The kernel says who the
    client is (SO_PEERCRED): nothing it sends can choose the namespaces."""
    import ctypes

    pid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    try:
        nested = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # a client in a namespace above this process's (the lab runs in one): not sealed
        return False
    own = os.stat("/proc/self/ns/user")
    try:  # a sandbox's: the nested namespace, child of the sandbox's, child of this process's
        outer = fcntl.ioctl(nested, NS_GET_PARENT)
        grandparent = fcntl.ioctl(outer, NS_GET_PARENT)
    except OSError:  # no parent we may see: this process's own namespace, or one above it
        os.close(nested)
        return False
    above = os.fstat(grandparent)
    os.close(grandparent)
    if (above.st_dev, above.st_ino) != (own.st_dev, own.st_ino):
        os.close(nested)
        os.close(outer)
        return False
    kinds = ("mnt", "uts", "ipc", "net", "pid")
    others = [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in kinds]
    libc = ctypes.CDLL(None, use_errno=True)
    for fd, kind in [(outer, CLONE_NEWUSER), *((fd, 0) for fd in others), (nested, CLONE_NEWUSER)]:
        if libc.setns(fd, kind) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"cannot enter the instance of process {pid}: {os.strerror(number)}")
        os.close(fd)
    # joining a user namespace grants every capability in it; ec2-user's `aws` holds none
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop the capabilities of the instance's aws")
    # its PID namespace holds only children: the command runs in one, as a process of the instance
    # (`ps` shows it, /proc/self is its own, Ctrl-C reaches it); this one waits for it, silent
    command = os.fork()
    if command:
        _, status = os.waitpid(command, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    return True


def _run(connection: socket.socket, home_paths: list[tuple[Any, str | None]], lab: tuple[str, tuple[int, ...]]) -> None:
    """In the forked child: become the client's `aws` process, run the command, report its status.
    `lab`: the lab's directory and its API and metadata ports."""
    import awscli
    import awscli.clidriver

    status = 255
    try:
        request, fds = _receive(connection)
        fds, identity = fds[:3], fds[3:]
        # before any thread: setns needs a lone one, and Landlock fences the calling thread only
        if not _enter_the_clients_instance(connection):
            try:
                _fence_the_command(*lab, identity)
            except OSError as error:
                os.write(
                    fds[2], f"aws: the lab could not fence this command ({error}), so it did not run it\n".encode()
                )
                raise
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
        os.chdir(request["cwd"])
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
    except BaseException:  # noqa: BLE001 - the child must report a status whatever happens
        import traceback

        traceback.print_exc()
        status = 255
    finally:
        try:
            connection.sendall(struct.pack(">i", int(status)))
        finally:
            os._exit(int(status) & 0xFF)


def serve(path: str, lab: int, ports: tuple[int, ...], sealed_path: str | None = None) -> None:
    """Warm up, then fork a child per command until the lab process `lab`, our parent, is gone.
    `ports`: the lab's API and metadata ports, all the TCP a fenced command may reach.
    `sealed_path`: a second socket, the one sealed instances reach (labprocess/sandbox.py)."""
    if os.getppid() != lab:  # it died while we were starting
        return
    try:
        warm()
    except motofixes.RequiredFixMissing as error:  # instances then run the plain aws CLI
        print(error, flush=True)
        return
    home_paths = paths_from_home(os.environ.get("HOME", ""))
    listeners = []
    for where in [path, *([sealed_path] if sealed_path else [])]:
        if os.path.exists(where):
            os.unlink(where)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(where)
        os.chmod(where, 0o600)
        listener.listen(64)
        listeners.append(listener)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while os.getppid() == lab:
        ready, _, _ = select.select(listeners, [], [], 1.0)
        for listener in ready:
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            if os.fork() == 0:
                for each in listeners:
                    each.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                connection.settimeout(None)
                _run(connection, home_paths, (os.path.dirname(path), ports))
            connection.close()
    for where in [path, *([sealed_path] if sealed_path else [])]:
        os.unlink(where)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), tuple(int(port) for port in sys.argv[3].split(",")), *sys.argv[4:5])
