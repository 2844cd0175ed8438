"""Sealed instances (`labkit up --sealed`): each running instance its own machine, sealed by the kernel.

For every running instance the lab process keeps one sandbox: util-linux `unshare` makes a user,
mount, UTS, IPC, network and PID namespace owned by the lab's user, and labkit/seal/sandbox_init.py
makes the instance's machine in them (its docstring says what), then stays as its PID 1. What a student
runs enters those namespaces, then a nested user namespace where they are ec2-user (labkit/seal/kernel.py).

Inside, the network is loopback alone. The lab serves it through listening sockets made inside
(so they live in that network, and answer nothing else) and handed to the lab:

    169.254.169.254:80   the metadata service, for this instance only: the socket that accepted a
                         request says which instance asks, so there is nothing to forge (and at
                         [fd00:ec2::254]:80, answering where the instance may use IPv6)
    127.0.0.1:443        the AWS API, over TLS, with a certificate for AWS's own endpoint names
                         (ENDPOINTS, and BUCKET.s3.amazonaws.com), signed by the lab's certificate
                         authority, which only the instance trusts
    169.254.169.253:53   the Amazon DNS server (UDP, labprocess/resolver.py): those names at 127.0.0.1,
                         any bucket's too, the instance's own ip-….ec2.internal; NXDOMAIN for others.
                         The instance's /etc/hosts holds the names it always held, and comes first
    /run/labkit/aws.sock the warm `aws` (labprocess/cliserver.py), handed on with the descriptors of
                         the sandbox's namespaces: the socket says which instance a command comes
                         from, and the descriptors are how the command joins it

The sandbox lives while its instance runs: `reconcile` starts the missing ones and ends those of
instances no longer running (their processes die with their PID 1). A lab that restarts makes them
again; homes are kept in the state directory.

labkit/seal/kernel.py `refusal()` says, in one line, why this host cannot make them (then the lab keeps
the environment seal).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.labprocess import resolver
from labkit.protocol import IMDS_IPV4, IMDS_IPV6, REGION, instance_home, private_dns_name
from labkit.seal import kernel, sandbox_init
from labkit.seal.bin import CLI_INSIDE, in_sandbox

INIT = Path(sandbox_init.__file__)  # PID 1 of each sandbox, run by its path
# AWS's endpoint names, all at 127.0.0.1 (API_ADDRESS), where the lab serves the API. AWS_HOSTS are also
# in the instance's /etc/hosts, as they were before it had a DNS server; any name under one of S3_HOSTS
# is a bucket's (virtual-hosted-style: `aws s3` asks https://BUCKET.s3.amazonaws.com/KEY)
AWS_HOSTS = ("iam.amazonaws.com", "sts.amazonaws.com", f"sts.{REGION}.amazonaws.com", f"ec2.{REGION}.amazonaws.com")
S3_HOSTS = ("s3.amazonaws.com", f"s3.{REGION}.amazonaws.com")
ENDPOINTS = (*AWS_HOSTS, *S3_HOSTS, f"dynamodb.{REGION}.amazonaws.com")
IMDS_ADDRESS, API_ADDRESS = (IMDS_IPV4, 80), ("127.0.0.1", 443)
IMDS_IPV6_ADDRESS = (IMDS_IPV6, 80)  # the metadata service's IPv6 address (Nitro instances)
DNS_ADDRESS = ("169.254.169.253", 53)  # the Amazon DNS server's, in every VPC (UDP)
# the sockets the lab serves an instance on, made inside it (sandbox_init.py): name, protocol, address, port
LISTEN = (
    ("imds", "tcp", *IMDS_ADDRESS),
    ("api", "tcp", *API_ADDRESS),
    ("dns", "udp", *DNS_ADDRESS),
    ("imds-ipv6", "tcp", *IMDS_IPV6_ADDRESS),  # made where the kernel has IPv6 only
)
NEEDED = {"imds", "api", "dns"}
RESOLV_CONF = f"search ec2.internal\nnameserver {DNS_ADDRESS[0]}\noptions timeout:1 attempts:1\n"  # a miss is fast
# where names come from: the instance's files, and for hosts the DNS server after them (the host's
# nsswitch.conf may name services that are not there inside, such as systemd's or mDNS's)
NSSWITCH_CONF = """passwd:     files
group:      files
shadow:     files
gshadow:    files
hosts:      files dns
networks:   files
protocols:  files
services:   files
ethers:     files
rpc:        files
netgroup:   files
"""
START_TIMEOUT = 10.0

OS_RELEASE = """NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux {release}"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
DOCUMENTATION_URL="https://docs.aws.amazon.com/linux/"
SUPPORT_URL="https://aws.amazon.com/premiumsupport/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
VENDOR_NAME="AWS"
VENDOR_URL="https://aws.amazon.com/"
SUPPORT_END="2029-06-30"
"""
SYSTEM_RELEASE = "Amazon Linux release {release} (Amazon Linux)\n"
AL2023_RELEASE = re.compile(r"^al2023-ami(?:-minimal)?-(2023\.\d+\.\d{8})\.\d+-")  # al2023-ami-2023.12.20260930.0-…
NEWEST_RELEASE = "2023.12.20260930"  # the lab catalogue's newest AL2023 AMI (labkit/catalogue.py)


def release_of(image_name: str) -> str:
    """The Amazon Linux 2023 release an instance launched from this AMI runs, as its name says it;
    any other AMI's instance runs the newest (every lab instance is Amazon Linux 2023 inside)."""
    found = AL2023_RELEASE.match(image_name)
    return found.group(1) if found else NEWEST_RELEASE


PASSWD = """root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
ec2-user:x:1000:1000:EC2 Default User:/home/ec2-user:/bin/bash
"""
GROUP = """root:x:0:
bin:x:1:
daemon:x:2:
adm:x:4:ec2-user
wheel:x:10:ec2-user
systemd-journal:x:190:ec2-user
nobody:x:65534:
ec2-user:x:1000:
"""


# The names the certificate holds: AWS's endpoints, and each bucket's. A wildcard covers one label, as
# AWS's own certificate's: a bucket whose name holds a dot fails verification, over TLS, as on AWS
SERVED_NAMES = (*ENDPOINTS, *(f"*.{host}" for host in S3_HOSTS))


class Authority:
    """The lab's certificate authority, and a certificate for AWS's endpoint names that it signs.
    Made anew at each start; its key never leaves the lab process (and the state directory)."""

    def __init__(self, home: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labkit instances' certificate authority")])
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AWS_HOSTS[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in SERVED_NAMES]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
        chain = home / "sandbox-tls.pem"  # owner-only, like the directory; hidden from every instance
        fd = os.open(chain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain)


def _ca_bundles() -> list[str]:
    """The files an instance's programs read trusted certificates from."""
    found = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
    for module in ("botocore", "certifi", "pip._vendor.certifi"):
        try:
            imported = __import__(module, fromlist=["_"])
        except ImportError:
            continue
        folder = Path(imported.__file__ or "").parent
        found += [str(p) for p in (folder / "cacert.pem",) if p.exists()]
    return found


@dataclass
class Sandbox:
    """One instance's namespaces: the holder process, its PID 1, and what the lab serves inside."""

    instance_id: str
    private_ip: str
    process: subprocess.Popen[bytes]
    init: int  # PID 1's pid, as the lab sees it
    nested: int  # the pid, inside, of the process holding the ec2-user namespace
    servers: list[Any]
    lab: socket.socket  # the lab's end of the line to PID 1: when it closes (the lab ends), the sandbox ends
    warm: list[int]  # the warm `aws`'s listening socket, then the namespaces' descriptors (sandbox_init.NAMESPACES)

    def alive(self) -> bool:
        return self.process.poll() is None

    def end(self) -> None:
        stopping = [threading.Thread(target=server.shutdown) for server in self.servers]
        for thread in stopping:  # together: each takes up to its poll interval to notice
            thread.start()
        for thread in stopping:
            thread.join()
        for server in self.servers:
            server.server_close()
        if self.process.poll() is None:
            os.kill(self.init, signal.SIGKILL)  # everything inside dies with it
            self.process.wait()
        self.lab.close()
        self.close_warm()

    def close_warm(self) -> None:
        for fd in self.warm:
            os.close(fd)
        self.warm = []


class Sandboxes:
    """The sandboxes of a lab's running instances (one lab process holds them all)."""

    def __init__(self, home: Path, serve: Any, warm: Any = None) -> None:
        """`serve(instance_id, imds_sockets, api_socket, context)`: the servers the lab runs on one
        sandbox's sockets (the metadata service's IPv4 one, and its IPv6 one where the kernel has IPv6).
        `warm(instance_id, fds)`: hands the warm `aws` an instance's socket and namespaces (`fds`), or
        tells it the instance is gone (None); without it, instances have no warm `aws` socket."""
        self.home = home
        self.serve = serve
        self.warm = warm
        self.lock = threading.Lock()
        self.held: dict[str, Sandbox] = {}
        self.failed: dict[str, str] = {}  # why an instance's sandbox could not be made, the last time
        self.python = sys.executable
        self.keep = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
        self.bundles = _ca_bundles()
        self.authority = Authority(home)

    def reconcile(self, running: dict[str, tuple[str, str]]) -> None:
        """Make the sandboxes those of `running` (instance id → private address, AMI name), no more."""
        with self.lock:
            for instance_id in list(self.held):
                box = self.held[instance_id]
                if instance_id not in running or not box.alive() or box.private_ip != running[instance_id][0]:
                    del self.held[instance_id]
                    if self.warm is not None:
                        self.warm(instance_id, None)
                    box.end()
            for instance_id, (address, image) in running.items():
                if instance_id not in self.held:
                    try:
                        self.held[instance_id] = box = self._start(instance_id, address, image)
                        self.failed.pop(instance_id, None)
                        if self.warm is not None and box.warm:
                            self.warm(instance_id, box.warm)  # the server's now: the lab keeps no copy
                        box.close_warm()
                    except (OSError, RuntimeError) as error:
                        self.failed[instance_id] = str(error)
                        print(f"labkit: {error}", flush=True)

    def find(self, instance_id: str) -> Sandbox | None:
        with self.lock:
            return self.held.get(instance_id)

    def end_all(self) -> None:
        with self.lock:
            for box in self.held.values():
                box.end()
            self.held.clear()

    def _setup(self, instance_id: str, address: str, image: str, lab_end: int) -> dict[str, Any]:
        name = private_dns_name(address)
        hosts = f"127.0.0.1   localhost localhost.localdomain\n{address}   {name} {name.split('.')[0]}\n"
        hosts += "".join(f"127.0.0.1   {host}\n" for host in AWS_HOSTS)
        hosts += f"{IMDS_ADDRESS[0]}   instance-data.ec2.internal instance-data\n"  # as the VPC's resolver answers
        home = instance_home(self.home, instance_id)
        home.mkdir(parents=True, exist_ok=True)
        return {
            "lab_fd": lab_end,
            "hostname": name,
            "home": str(home),
            "hide": sorted({str(self.home), os.path.realpath(os.path.expanduser("~"))}),
            "keep": self.keep,
            "files": {
                "/etc/hostname": name + "\n",
                "/etc/hosts": hosts,
                "/etc/resolv.conf": RESOLV_CONF,
                "/etc/nsswitch.conf": NSSWITCH_CONF,
                "/etc/passwd": PASSWD,
                "/etc/group": GROUP,
                "/etc/os-release": OS_RELEASE.format(release=release_of(image)),
                "/etc/system-release": SYSTEM_RELEASE.format(release=release_of(image)),
            },
            "cli_socket": CLI_INSIDE if self.warm is not None else "",
            "ca": self.authority.ca_pem,
            "ca_bundles": self.bundles,
            "bin": in_sandbox(self.python),
            "addresses": {"ipv4": [IMDS_IPV4, DNS_ADDRESS[0]], "ipv6": IMDS_IPV6},  # on its loopback
            "listen": LISTEN,
        }

    def _start(self, instance_id: str, address: str, image: str) -> Sandbox:
        lab, theirs = socket.socketpair()
        with theirs:
            setup = json.dumps(self._setup(instance_id, address, image, theirs.fileno())).encode()
            process = subprocess.Popen(
                kernel.unshared([self.python, "-I", "-S", str(INIT)]),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                cwd="/",
            )
            theirs.close()
            assert process.stdin is not None and process.stderr is not None
            process.stdin.write(setup)
            process.stdin.close()
            lab.settimeout(START_TIMEOUT)
            try:
                message, fds, _, _ = socket.recv_fds(lab, 65536, 16)
            except OSError:
                message, fds = b"", []
            lab.settimeout(None)
        try:
            said = json.loads(message or b"{}")
        except ValueError:
            said = {}
        made, warm = said.get("listening"), int(said.get("cli", 0))  # the sockets' names, in the fds' order
        names = made if isinstance(made, list) and all(isinstance(n, str) for n in made) else []
        whole = len(set(names)) == len(names) and NEEDED <= set(names) <= {name for name, *_ in LISTEN}
        if "nested" not in said or not whole or len(fds) != len(names) + warm:
            for fd in fds:
                os.close(fd)
            lab.close()
            process.kill()
            process.wait()
            why = said.get("error") or process.stderr.read().decode(errors="replace").strip() or "no reason given"
            if "nested" in said and not said.get("error"):  # made, but not handed over whole
                why = f"it handed over sockets {made!r} in {len(fds)} descriptors; the lab needs {sorted(NEEDED)}"
            raise RuntimeError(f"the sandbox of {instance_id} could not be made: {why.splitlines()[-1]}")
        process.stderr.close()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        sockets = {name: socket.socket(fileno=fd) for name, fd in zip(names, fds, strict=False)}
        imds = [sockets[name] for name in ("imds", "imds-ipv6") if name in sockets]
        servers = self.serve(instance_id, imds, sockets["api"], self.authority.context)
        servers.append(resolver.serve(sockets["dns"], zone_of(address)))
        return Sandbox(instance_id, address, process, int(children[0]), int(said["nested"]), servers, lab,
                       fds[len(names):])  # fmt: skip


def zone_of(address: str) -> resolver.Zone:
    """What the DNS server of the instance at private `address` answers: AWS's endpoint names, each
    bucket's, the instance's own name and the metadata service's (as the instance's /etc/hosts)."""
    names = {host: API_ADDRESS[0] for host in ENDPOINTS}
    names["instance-data.ec2.internal"] = IMDS_IPV4
    try:  # an address EC2 was handed (PrivateIpAddress) may be anything; only a real one has a name here
        names[private_dns_name(address)] = str(ipaddress.IPv4Address(address))
    except ValueError:
        pass
    return resolver.Zone(names, {host: API_ADDRESS[0] for host in S3_HOSTS})
