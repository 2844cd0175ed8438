"""PID 1 of one sealed instance (labkit/labprocess/sandbox.py starts it; standard library only).

    unshare --user --map-root-user --mount --uts --ipc --net --pid --fork --mount-proc \
        --propagation private PYTHON -I -S sandbox_init.py  < SETUP (JSON)  3<> LAB (a Unix socket)

Run as root of a new user namespace that the lab's user owns, it makes the instance's machine, then
waits, reaping whatever ends, until the lab ends the sandbox (its processes die with it):

- the hostname `ip-172-31-x-y.ec2.internal`; loopback up, with 169.254.169.254, 169.254.169.253 (the
  Amazon DNS server) and fd00:ec2::254 on it; nothing else;
- /etc/passwd, group, hostname, hosts, resolv.conf, nsswitch.conf, os-release and system-release of
  Amazon Linux 2023, laid over the host's; /usr/local/bin with the instance's `aws`, `python3`,
  `ec2-metadata` and `sudo` (labkit/seal/bin.py);
- a fresh tmpfs over every place that holds the host user's or the lab's files (/tmp, /home, /root,
  the host user's home, /run (the host's sockets), /var/tmp, the lab's state directory), and the instance's own
  home (kept in the state directory) at /home/ec2-user; a /dev of its own (no disk, no other
  user's terminal); every other mount read-only, /proc/sys too;
- the lab's certificate authority over the CA bundles, so that only this instance trusts it;
- the metadata service's and the AWS endpoint's listening sockets, and the DNS server's UDP socket,
  made here (so they live in this instance's network) and handed to the lab over LAB, each by its
  name; so is the warm `aws`'s socket, /run/labkit/aws.sock, made in this instance's own /run (no
  other instance can reach it), with the descriptors of this sandbox's namespaces: what serves the
  instance knows it by the socket a client came through and joins it by those descriptors, never by
  a process id;
- a nested user namespace whose uid and gid 1000 (ec2-user) are the lab's user: what a student
  runs enters it, without any capability; and no more user namespaces may be made inside.

Everything it is told comes on stdin, never in its command line. It is not dumpable, holds no
descriptor onto the host's files, and its working directory is `/`.
"""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
# the flags a read-only remount must keep (the kernel refuses to drop a locked one)
KEPT = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
}
MNT_DETACH = 2
# this sandbox's, in the order they are joined (labkit/seal/kernel.py imports these two: they are defined here alone)
NAMESPACES = ("user", "mnt", "uts", "ipc", "net", "pid")
CLONE_NEWUSER = 0x10000000
PR_SET_DUMPABLE, PR_SET_PDEATHSIG = 4, 1
LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        LIBC.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None),
        f"mount {target}",
    )  # fmt: skip


def tmpfs(target: str, mode: str = "755") -> None:
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size=64m")


def covered(path: str, covers: list[str]) -> bool:
    return any(path == c or path.startswith(c.rstrip("/") + "/") for c in covers)


def make_machine(setup: dict) -> tuple[dict[str, socket.socket], socket.socket | None]:
    os.chdir("/")
    home = os.open(setup["home"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # before the state dir is hidden
    # the programs an instance runs (Python, the aws CLI), wherever they are installed: kept, read-only
    keep = {path: os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for path in setup["keep"]}
    socket.sethostname(setup["hostname"])
    # the metadata service's addresses (labkit/protocol.py: IMDS_IPV4, IMDS_IPV6) and the Amazon DNS server's
    addresses = setup["addresses"]
    batch = "link set lo up\n" + "".join(f"addr add {a}/32 dev lo\n" for a in addresses["ipv4"])
    made = subprocess.run(["ip", "-batch", "-"], input=batch.encode(), capture_output=True)  # one `ip` for all
    if made.returncode != 0:
        said = made.stderr.decode(errors="replace").strip().replace("\n", "; ")
        raise OSError(f"the loopback's addresses could not be set ({addresses['ipv4']}): ip said {said}")
    ipv6 = subprocess.run(
        ["ip", "-6", "addr", "add", f"{addresses['ipv6']}/128", "dev", "lo", "nodad"], capture_output=True
    )
    # /etc: the host's, with the instance's files laid over it: an overlay whose upper layer, written
    # first (so that nothing of the host's is copied up), lives in a staging tmpfs dropped from view
    # later; where overlays are refused, each file is bound over the host's
    tmpfs("/tmp")
    os.mkdir("/tmp/etc")
    os.mkdir("/tmp/etc-work")
    for name, text in setup["files"].items():  # /etc/NAME → text
        with open(f"/tmp/etc/{os.path.basename(name)}", "w") as f:
            f.write(text)
    try:
        mount("overlay", "/etc", "overlay", 0, "lowerdir=/etc,upperdir=/tmp/etc,workdir=/tmp/etc-work")
    except OSError:
        for name in setup["files"]:
            if os.path.exists(name):
                mount(f"/tmp/etc/{os.path.basename(name)}", name, None, MS_BIND)
    bin_dir = "/usr/local/bin"
    if os.path.isdir(bin_dir):
        tmpfs(bin_dir)
        for name, text in setup["bin"].items():
            with open(f"{bin_dir}/{name}", "w") as f:
                f.write(text)
            os.chmod(f"{bin_dir}/{name}", 0o755)
    _check(LIBC.umount2(b"/tmp", MNT_DETACH), "umount /tmp")
    own_dev()
    # hide what the host user and the lab hold; then the instance's own home
    covers: list[str] = ["/dev"]
    # /run and /var/run hold the host's sockets (a container engine's, the session bus): none is the instance's
    for path in ["/tmp", "/var/tmp", "/run", "/var/run", "/root", "/home", *setup["hide"]]:
        real = os.path.realpath(path)
        if os.path.isdir(real) and not covered(real, covers):
            tmpfs(real, "1777" if real in ("/tmp", "/var/tmp") else "755")
            covers.append(real)
    for path, fd in keep.items():
        if covered(path, covers):
            os.makedirs(path, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    cli = None
    if setup.get("cli_socket") and os.path.isdir("/run"):  # the warm `aws`'s socket, in this instance's /run
        os.makedirs(os.path.dirname(setup["cli_socket"]), exist_ok=True)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.bind(setup["cli_socket"])
        os.chmod(setup["cli_socket"], 0o666)  # ec2-user's, as every process's of the instance
        cli.listen(64)
    # the CA bundles the instance's programs read hold the lab's CA only: laid over them once the kept
    # directories are back (a bundle in a virtual environment under /tmp was hidden until then), from a
    # file in the instance's /run, which becomes read-only with the rest
    ca_file = "/run/labkit-ca.pem" if os.path.isdir("/run") else "/var/tmp/labkit-ca.pem"
    with open(ca_file, "w") as f:
        f.write(setup["ca"])
    for bundle in setup["ca_bundles"]:
        if os.path.isfile(bundle):
            mount(ca_file, bundle, None, MS_BIND)
    os.mkdir("/home/ec2-user", 0o700)
    mount(f"/proc/self/fd/{home}", "/home/ec2-user", None, MS_BIND)
    os.close(home)
    read_only_except(["/tmp", "/var/tmp", "/dev/shm", "/dev/pts", "/home/ec2-user", "/proc"])
    # the instance's network: what the lab serves inside it, each socket by its name (sandbox.py: LISTEN)
    listening = {}
    for name, kind, address, port in setup["listen"]:
        if ":" in address and ipv6.returncode != 0:
            continue  # a kernel without IPv6: the metadata service has its IPv4 address only
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server = socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        if kind == "tcp":
            server.listen(64)
        listening[name] = server
    return listening, cli


DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def own_dev() -> None:
    """A /dev of the instance's own: the harmless devices of the host, its own terminals (a new
    devpts) and shared memory; never the host's disks or other users' terminals (which, when the
    lab runs as root, would be ec2-user's to open)."""
    devices = {name: os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC) for name in DEVICES}
    tmpfs("/dev")
    for name, fd in devices.items():
        open(f"/dev/{name}", "w").close()
        mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
        os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):  # fmt: skip
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/pts")
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.mkdir("/dev/shm")
    tmpfs("/dev/shm", "1777")


def read_only_except(writable: list[str]) -> None:
    """Every mount read-only but those in `writable`: the host's files stay the host's, whoever
    runs the lab (as root, ec2-user is root's uid on the host, and owns its files there)."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # \040 is a space
        if target in writable or "ro" in fields[5].split(","):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in fields[5].split(","):
            flags |= KEPT.get(option, 0)
        try:
            mount("none", target, None, flags)
        except OSError:
            if os.path.exists(target):  # one hidden under a later mount cannot be reached: nor can a student
                raise


def proc_sys_read_only() -> None:
    mount("/proc/sys", "/proc/sys", None, MS_BIND)
    mount("none", "/proc/sys", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def nested_user() -> int:
    """A child in a new user namespace where uid and gid 1000 are ours (the lab's user); returns its pid."""
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(mapped_w)
        _check(LIBC.unshare(CLONE_NEWUSER), "unshare user")
        os.write(ready_w, b"1")
        os.read(mapped_r, 1)
        for fd in range(3, 64):
            try:
                os.close(fd)
            except OSError:
                pass
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            signal.pause()
    os.close(ready_w)
    os.close(mapped_r)
    os.read(ready_r, 1)
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write("1000 0 1\n")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write("1000 0 1\n")
    os.write(mapped_w, b"1")
    os.close(ready_r)
    os.close(mapped_w)
    return pid


def main() -> None:
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    setup = json.loads(sys.stdin.read())
    lab = socket.socket(fileno=setup["lab_fd"])
    try:
        listening, cli = make_machine(setup)
        nested = nested_user()
        # what joins this instance: its namespaces, the nested user namespace last (labkit/seal/kernel.py: join)
        namespaces = [os.open(f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in NAMESPACES]
        namespaces.append(os.open(f"/proc/{nested}/ns/user", os.O_RDONLY | os.O_CLOEXEC))
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0\n")
        proc_sys_read_only()
    except Exception as error:  # noqa: BLE001 - said to the lab, in one line
        lab.sendall(json.dumps({"error": str(error)}).encode())
        sys.exit(1)
    fds = [s.fileno() for s in listening.values()]
    warm = [cli.fileno(), *namespaces] if cli is not None else []
    # the descriptors in order: the listening sockets, named, then the warm `aws`'s (`cli` of them)
    message = json.dumps({"nested": nested, "listening": list(listening), "cli": len(warm)}).encode()
    socket.send_fds(lab, [message], fds + warm)
    for s in listening.values():
        s.close()
    if cli is not None:
        cli.close()
    for fd in namespaces:
        os.close(fd)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    signal.signal(signal.SIGCHLD, reap)
    while lab.recv(1):  # until the lab closes its end, or ends however it ends: then everything inside ends
        pass


def reap(number: int, frame: object) -> None:
    """PID 1's duty: collect whatever ended inside (orphans come to it)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


if __name__ == "__main__":
    main()
