"""`ec2-metadata` on the lab's instances: Amazon Linux 2023's command (package amazon-ec2-utils),
written again for the lab. Its options, the order it prints in and its `name: value` lines follow
amazon-ec2-utils' `ec2-metadata` script (github.com/amazonlinux/amazon-ec2-utils); like it, it
first asks for an IMDSv2 token (TTL 900 s) and sends it with every request.

Each instance's `bin/ec2-metadata` runs this file with the lab's Python, in the instance's
environment, so its requests reach the instance's metadata service through `http_proxy` as curl's
do. Standard library only; labkit never imports it.
"""

from __future__ import annotations

import getopt
import re
import sys
import urllib.error
import urllib.request

BASE_URL = "http://169.254.169.254"
TOKEN_TTL = "900"
NO_TOKEN = (
    "[ERROR] Could not get IMDSv2 token. Instance Metadata might have been disabled or this is not an EC2 instance."
)

# Each option: its long name, short letter (or ""), and what it prints: the label and the path
# under /latest/ of a plain `label: value` line, or one of the three lists.
OPTIONS: list[tuple[str, str, str, str]] = [
    ("ami-id", "a", "ami-id", "meta-data/ami-id"),
    ("ami-launch-index", "l", "ami-launch-index", "meta-data/ami-launch-index"),
    ("ami-manifest-path", "m", "ami-manifest-path", "meta-data/ami-manifest-path"),
    ("ancestor-ami-ids", "n", "ancestor-ami-ids", "meta-data/ancestor-ami-ids"),
    ("aws-domain", "D", "aws-domain", "meta-data/services/domain"),
    ("block-device-mapping", "b", "block-device-mapping", ""),
    ("instance-id", "i", "instance-id", "meta-data/instance-id"),
    ("instance-type", "t", "instance-type", "meta-data/instance-type"),
    ("local-hostname", "h", "local-hostname", "meta-data/local-hostname"),
    ("local-ipv4", "o", "local-ipv4", "meta-data/local-ipv4"),
    ("kernel-id", "k", "kernel-id", "meta-data/kernel-id"),
    ("availability-zone", "z", "placement", "meta-data/placement/availability-zone"),
    ("availability-zone-id", "Z", "availability-zone-id", "meta-data/placement/availability-zone-id"),
    ("partition", "P", "partition", "meta-data/services/partition"),
    ("product-codes", "c", "product-codes", "meta-data/product-codes"),
    ("public-hostname", "p", "public-hostname", "meta-data/public-hostname"),
    ("public-ipv4", "v", "public-ipv4", "meta-data/public-ipv4"),
    ("public-keys", "u", "public-keys", ""),
    ("ramdisk-id", "r", "ramdisk-id", "meta-data/ramdisk-id"),
    ("reservation-id", "e", "reservation-id", "meta-data/reservation-id"),
    ("security-groups", "s", "security-groups", "meta-data/security-groups"),
    ("user-data", "d", "user-data", "user-data"),
    ("tags", "g", "tags", ""),
    ("region", "R", "region", "meta-data/placement/region"),
]
SHORT = "almnDbithokzZPcpvuresdgR"
LONG = [name for name, *_ in OPTIONS] + ["help", "all", "quiet", "path="]
# What a run without options prints, in amazon-ec2-utils' order (and with its label
# `availablility-zone-id`, spelt as it spells it there).
ALL = [
    ("ami-id", "meta-data/ami-id"),
    ("ami-launch-index", "meta-data/ami-launch-index"),
    ("ami-manifest-path", "meta-data/ami-manifest-path"),
    ("ancestor-ami-ids", "meta-data/ancestor-ami-ids"),
    ("availablility-zone-id", "meta-data/placement/availability-zone-id"),
    ("aws-domain", "meta-data/services/domain"),
    ("block-device-mapping", ""),
    ("instance-id", "meta-data/instance-id"),
    ("instance-type", "meta-data/instance-type"),
    ("local-hostname", "meta-data/local-hostname"),
    ("local-ipv4", "meta-data/local-ipv4"),
    ("kernel-id", "meta-data/kernel-id"),
    ("placement", "meta-data/placement/availability-zone"),
    ("region", "meta-data/placement/region"),
    ("partition", "meta-data/services/partition"),
    ("product-codes", "meta-data/product-codes"),
    ("public-hostname", "meta-data/public-hostname"),
    ("public-ipv4", "meta-data/public-ipv4"),
    ("public-keys", ""),
    ("ramdisk-id", "meta-data/ramdisk-id"),
    ("reservation-id", "meta-data/reservation-id"),
    ("security-groups", "meta-data/security-groups"),
    ("user-data", "user-data"),
    ("tags", ""),
]

HELP = """\
ec2-metadata (the lab's copy of Amazon Linux's command, from amazon-ec2-utils)
Retrieves instance metadata from within a running EC2 instance, with IMDSv2.
e.g. the instance id: ec2-metadata -i;  the AMI id: ec2-metadata -a;  this help: ec2-metadata --help
Instance metadata on AWS: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-metadata.html

Usage: ec2-metadata <option>
Options:
--all                     Show all metadata information for this host (also default).
-a/--ami-id               The ID of the AMI the instance was launched from.
-l/--ami-launch-index     The index of this instance in its reservation.
-m/--ami-manifest-path    The manifest path of the AMI.
-n/--ancestor-ami-ids     The AMIs rebundled to create this AMI, if any.
-D/--aws-domain           The domain of AWS resources in the instance's Region.
-b/--block-device-mapping The virtual devices of the instance's volumes.
-i/--instance-id          The ID of this instance.
-t/--instance-type        The instance type.
-h/--local-hostname       The private IPv4 DNS hostname.
-o/--local-ipv4           The private IPv4 address.
-k/--kernel-id            The kernel ID, if applicable.
-z/--availability-zone    The Availability Zone (printed as placement).
-Z/--availability-zone-id The Availability Zone ID.
-R/--region               The Region.
-P/--partition            The AWS partition.
-c/--product-codes        AWS Marketplace product codes, if any.
-p/--public-hostname      The public DNS hostname, if any.
-v/--public-ipv4          The public IPv4 address, if any.
-u/--public-keys          The public key given at launch, if any.
-r/--ramdisk-id           The RAM disk ID, if applicable.
-e/--reservation-id       The ID of the reservation.
-s/--security-groups      The names of the instance's security groups.
-d/--user-data            The user data given at launch, if any.
-g/--tags                 The instance's tags, if allowed in its metadata options.
--quiet                   Print values only, without their names.
--path PATH               Show the metadata at PATH. Can be given more than once."""

out = sys.stdout.buffer


class Metadata:
    """The instance's metadata service, asked with one IMDSv2 token."""

    def __init__(self) -> None:
        request = urllib.request.Request(
            f"{BASE_URL}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self.token = response.read().decode()
        except (urllib.error.URLError, OSError, UnicodeDecodeError):
            self.token = ""
        if not self.token:
            print(NO_TOKEN, file=sys.stderr)
            sys.exit(1)

    def get(self, path: str, version: str = "latest") -> bytes:
        """The answer at `path`, as curl -f prints it into $(…): nothing when it is an error, and
        without its final line feeds."""
        request = urllib.request.Request(
            f"{BASE_URL}/{version}/{path}", headers={"X-aws-ec2-metadata-token": self.token}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return bytes(response.read()).rstrip(b"\n")
        except (urllib.error.URLError, OSError):
            return b""


class Printer:
    def __init__(self, metadata: Metadata, *, quiet: bool) -> None:
        self.metadata = metadata
        self.quiet = quiet

    def label(self, text: str) -> None:
        if not self.quiet:
            out.write(text.encode())

    def metric(self, label: str, path: str, version: str = "latest") -> None:
        self.label(f"{label}: ")
        value = self.metadata.get(path, version)
        out.write((value or b"not available") + b"\n")

    def listed(self, label: str, folder: str, *, each: str) -> None:
        """block-device-mapping, public-keys or tags: a heading, then each entry of `folder`."""
        self.label(f"{label}: \n")
        names = self.metadata.get(folder).split()
        if not names:
            out.write(b"not available\n")
        for raw in names:
            name = raw.decode(errors="replace")
            if each == "public-keys":
                index, _, key_name = name.partition("=")
                self.label(f"keyname:{key_name or name}\nindex:{index}\n")
                key_format = self.metadata.get(f"meta-data/public-keys/{index}/").decode(errors="replace")
                self.label(f"format:{key_format}\nkey:(begins from next line)\n")
                out.write(self.metadata.get(f"meta-data/public-keys/{index}/{key_format}") + b"\n")
                continue
            if each == "tags" or not self.quiet:  # the tags' names are printed even with --quiet
                out.write(f"\t {name}: ".encode())
            out.write(self.metadata.get(f"{folder}{name}") + b"\n")

    def one(self, label: str, path: str) -> None:
        if label == "block-device-mapping":
            self.listed(label, "meta-data/block-device-mapping/", each="device")
        elif label == "public-keys":
            self.listed(label, "meta-data/public-keys/", each="public-keys")
        elif label == "tags":
            self.listed(label, "meta-data/tags/instance/", each="tags")
        else:
            self.metric(label, path)

    def all(self) -> None:
        for label, path in ALL:
            self.one(label, path)

    def path(self, given: str) -> None:
        path = re.sub("/+", "/", given)
        if not re.match(r"(^/$|^/?(1\.0|[0-9]{4}-[0-9]{2}-[0-9]{2}|latest))", path):
            path = f"latest/{path}" if re.match(r"^/?(dynamic|meta-data)", path) else f"latest/meta-data/{path}"
        path = re.sub("/+", "/", path)
        self.metric(path, path, version="")


def _getopt_error(error: getopt.GetoptError) -> str:
    """getopt(1)'s message for what Python's getopt refused."""
    option, message = error.opt, error.msg
    if "not a unique prefix" in message:
        found = " ".join(f"'--{name.rstrip('=')}'" for name in LONG if name.startswith(option))
        return f"option '--{option}' is ambiguous; possibilities: {found}"
    if "requires argument" in message:
        return f"option '--{option}' requires an argument"
    if "must not have an argument" in message:
        return f"option '--{option}' doesn't allow an argument"
    if len(option) == 1 and message.startswith(f"option -{option} "):
        return f"invalid option -- '{option}'"
    return f"unrecognized option '--{option}'"


def main(argv: list[str]) -> int:
    metadata = Metadata()  # as amazon-ec2-utils does: the token first, whatever the options
    try:
        parsed, _ = getopt.gnu_getopt(argv, SHORT, LONG)
    except getopt.GetoptError as error:
        print(f"ec2-metadata: {_getopt_error(error)}", file=sys.stderr)
        print("Terminating...", file=sys.stderr)
        return 1
    printer = Printer(metadata, quiet=any(option == "--quiet" for option, _ in parsed))
    if not argv:
        printer.all()
    by_option = {f"--{name}": (label, path) for name, _, label, path in OPTIONS}
    by_option.update({f"-{letter}": (label, path) for _, letter, label, path in OPTIONS})
    actions = []
    for option, value in parsed:
        if option == "--help":
            out.write(HELP.encode() + b"\n")
            return 0
        if option != "--quiet":
            actions.append((option, value))
    for option, value in actions:
        if option == "--all":
            printer.all()
            return 0
        if option == "--path":
            printer.path(value)
        else:
            printer.one(*by_option[option])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        out.flush()
