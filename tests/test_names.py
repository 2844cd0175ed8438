"""AWS's names on a sealed instance: the Amazon DNS server at 169.254.169.253 (labprocess/resolver.py)
answers them, every bucket's too, and the AWS API answers at them over TLS with the lab's certificate.

First the DNS server's rules, on packets made here byte by byte (RFC 1035, section 4.1); then, for
real, on an instance: `getent`, `curl`, and the `aws` CLI with S3 and DynamoDB.
"""

from __future__ import annotations

import json
import random
import socket
import struct

import pytest

from conftest import Demo
from labkit.labprocess.resolver import Resolver, Zone, answer, serve
from labkit.labprocess.sandbox import zone_of

PRIVATE_IP = "172.31.7.9"
ZONE = zone_of(PRIVATE_IP)  # what an instance's DNS server answers
A, AAAA, MX, ANY = 1, 28, 15, 255
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5


def query(name: str, qtype: int = A, *, ident: int = 0x1234, flags: int = 0x0100, qclass: int = 1) -> bytes:
    """A DNS query of one question, as a stub resolver sends it (recursion desired)."""
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", ident, flags, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, qclass)


def read(response: bytes | None) -> dict[str, object]:
    """What a response says: id, flags' parts, counts, the question as echoed, the A records' addresses."""
    assert response is not None
    ident, flags, qd, an, ns, ar = struct.unpack_from(">HHHHHH", response)
    at, asked = 12, b""
    if qd:
        while response[at]:
            at += response[at] + 1
        asked, at = response[12 : at + 5], at + 5
    addresses, ttls = [], []
    for _ in range(an):
        pointer, rtype, rclass, ttl, length = struct.unpack_from(">HHHIH", response, at)
        assert (pointer, rtype, rclass, length) == (0xC00C, A, 1, 4)
        addresses.append(socket.inet_ntoa(response[at + 12 : at + 16]))
        ttls.append(ttl)
        at += 16
    assert at == len(response), "bytes after the records it counts"
    return {"id": ident, "qr": flags >> 15, "rd": flags >> 8 & 1, "ra": flags >> 7 & 1, "rcode": flags & 0xF,
            "counts": (qd, an, ns, ar), "asked": asked, "addresses": addresses, "ttls": ttls}  # fmt: skip


# -- the DNS server's rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("spike-bucket.s3.amazonaws.com", "127.0.0.1"),
        ("my-bucket.s3.us-east-1.amazonaws.com", "127.0.0.1"),
        ("s3.amazonaws.com", "127.0.0.1"),
        ("dynamodb.us-east-1.amazonaws.com", "127.0.0.1"),
        ("iam.amazonaws.com", "127.0.0.1"),
        ("a.b.s3.amazonaws.com", "127.0.0.1"),  # resolves, as on AWS: the certificate is what refuses it
        ("ip-172-31-7-9.ec2.internal", PRIVATE_IP),
        ("instance-data.ec2.internal", "169.254.169.254"),
    ],
)
def test_a_name_of_the_labs_is_answered_with_its_address_and_nothing_more(name: str, address: str) -> None:
    sent = query(name, ident=0xBEEF)
    said = read(answer(sent, ZONE))
    assert said["addresses"] == [address] and said["ttls"] == [5]
    assert (said["id"], said["qr"], said["rd"], said["ra"], said["rcode"]) == (0xBEEF, 1, 1, 1, NOERROR)
    assert said["counts"] == (1, 1, 0, 0) and said["asked"] == sent[12:]


def test_names_are_compared_without_case_and_the_question_goes_back_as_asked() -> None:
    sent = query("S3.AmazonAWS.com.")
    said = read(answer(sent, ZONE))
    assert said["addresses"] == ["127.0.0.1"] and said["asked"] == sent[12:] and b"S3\x09AmazonAWS" in said["asked"]
    assert read(answer(query("Spike-Bucket.S3.US-EAST-1.AMAZONAWS.COM"), ZONE))["addresses"] == ["127.0.0.1"]


def test_aaaa_and_other_types_of_a_known_name_are_there_with_no_answer_and_any_gets_the_a() -> None:
    for qtype in (AAAA, MX):
        said = read(answer(query("spike-bucket.s3.amazonaws.com", qtype), ZONE))
        assert (said["rcode"], said["counts"], said["addresses"]) == (NOERROR, (1, 0, 0, 0), [])
    assert read(answer(query("s3.amazonaws.com", ANY), ZONE))["addresses"] == ["127.0.0.1"]


def test_an_address_that_is_not_one_gives_the_instance_no_name_and_breaks_nothing() -> None:
    """EC2 takes what RunInstances' PrivateIpAddress says (tests/test_cells.py makes one that is code); the
    instance's sandbox, and its DNS server, must still be made: its own name is then simply not there."""
    zone = zone_of("$(touch /tmp/pwned)")
    assert read(answer(query("s3.amazonaws.com"), zone))["addresses"] == ["127.0.0.1"]
    assert read(answer(query("instance-data.ec2.internal"), zone))["addresses"] == ["169.254.169.254"]


@pytest.mark.parametrize(
    "name",
    ["example.com", "amazonaws.com", "s3.eu-west-1.amazonaws.com", "xs3.amazonaws.com", "ip-10-0-0-1.ec2.internal",
     "example.com.ec2.internal", "s3.amazonaws.com.evil.example"],
)  # fmt: skip
def test_any_other_name_is_nxdomain(name: str) -> None:
    for qtype in (A, AAAA):
        said = read(answer(query(name, qtype), ZONE))
        assert (said["rcode"], said["counts"], said["addresses"]) == (NXDOMAIN, (1, 0, 0, 0), [])


def test_a_label_holding_a_dot_is_not_two_labels() -> None:
    """One label `x.s3` before `amazonaws.com` is not the name x.s3.amazonaws.com."""
    sent = (
        struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x04x.s3\x09amazonaws\x03com\x00" + struct.pack(">HH", A, 1)
    )
    assert read(answer(sent, ZONE))["rcode"] == NXDOMAIN


def test_what_is_not_one_readable_question_is_formerr_or_unanswered() -> None:
    whole = query("spike-bucket.s3.amazonaws.com")
    assert answer(b"", ZONE) is None and answer(whole[:11], ZONE) is None  # no header: nothing to answer
    assert answer(query("s3.amazonaws.com", flags=0x8180), ZONE) is None  # a response: never answered
    for cut in range(12, len(whole)):  # every truncation of a good query
        said = read(answer(whole[:cut], ZONE))
        assert (said["rcode"], said["counts"]) == (FORMERR, (0, 0, 0, 0)), cut
    two = struct.pack(">HHHHHH", 1, 0x0100, 2, 0, 0, 0) + whole[12:] + whole[12:]
    assert read(answer(two, ZONE))["rcode"] == FORMERR
    none = struct.pack(">HHHHHH", 1, 0x0100, 0, 0, 0, 0)
    assert read(answer(none, ZONE))["rcode"] == FORMERR
    pointer = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", A, 1)
    assert read(answer(pointer, ZONE))["rcode"] == FORMERR  # a question's name is never compressed
    long = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + (b"\x3f" + b"x" * 63) * 5
    assert read(answer(long + b"\x00\x00\x01\x00\x01", ZONE))["rcode"] == FORMERR  # a name over 255 bytes


def test_another_opcode_is_notimp_and_another_class_refused() -> None:
    assert read(answer(query("s3.amazonaws.com", flags=0x2900), ZONE))["rcode"] == NOTIMP  # UPDATE
    said = read(answer(query("version.bind", 16, qclass=3), ZONE))  # CHAOS TXT
    assert (said["rcode"], said["counts"]) == (REFUSED, (1, 0, 0, 0))


def test_an_edns_query_gets_no_more_than_it_asked() -> None:
    """dig sends an OPT record in the additional section: the answer holds the question and one A."""
    sent = query("spike-bucket.s3.amazonaws.com")
    sent = sent[:10] + b"\x00\x01" + sent[12:] + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    said = read(answer(sent, ZONE))
    assert (said["counts"], said["addresses"]) == ((1, 1, 0, 0), ["127.0.0.1"])


def test_random_packets_never_raise_and_any_answer_is_small_and_says_little() -> None:
    rng = random.Random(24)
    good = query("spike-bucket.s3.amazonaws.com")
    answered = 0
    for _ in range(20000):
        if rng.random() < 0.5:
            packet = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:  # a good query with a few bytes changed
            packet = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            packet = bytes(packet)
        response = answer(packet, ZONE)
        if response is not None:
            answered += 1
            counts = struct.unpack_from(">HHHH", response, 4)
            assert len(response) <= 512 and counts[0] <= 1 and counts[1] <= 1 and counts[2:] == (0, 0)
    assert answered > 10000


def test_the_server_answers_over_udp_and_its_socket_closes_when_it_ends() -> None:
    bound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bound.bind(("127.0.0.1", 0))
    server = serve(bound, Zone({"s3.amazonaws.com": "127.0.0.1"}, {"s3.amazonaws.com": "127.0.0.1"}))
    assert isinstance(server, Resolver)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asker:
        asker.settimeout(2)
        asker.sendto(b"\x00garbage", bound.getsockname())  # no answer, and the server goes on
        asker.sendto(query("bucket.s3.amazonaws.com", ident=77), bound.getsockname())
        said = read(asker.recv(512))
        assert (said["id"], said["addresses"]) == (77, ["127.0.0.1"])
    server.shutdown()
    server.server_close()
    assert bound.fileno() == -1


# -- on a sealed instance ------------------------------------------------------------------------


def sealed_demo(demo: Demo) -> Demo:
    assert demo.lab.info.sealed, f"these tests need the lab's instances sealed by the kernel: {demo.lab.sealing}"
    return demo


def test_bucket_and_service_names_resolve_through_the_labs_dns_server(demo: Demo) -> None:
    box = sealed_demo(demo).box
    said = box.run_lines(
        "cat /etc/resolv.conf\n"
        "grep -c -e s3 -e dynamodb /etc/hosts\n"  # not from the hosts file: from the DNS server
        "getent hosts spike-bucket.s3.amazonaws.com\n"
        "getent hosts my-bucket.s3.us-east-1.amazonaws.com\n"
        "getent hosts dynamodb.us-east-1.amazonaws.com\n"
        "getent hosts S3.AmazonAWS.com.\n"
        "getent hosts iam.amazonaws.com\n"
        "s=$(date +%s%N); getent hosts example.com; echo $? $(( ($(date +%s%N) - s) / 1000000 ))"
    ).results
    assert said[0].stdout.splitlines()[:2] == ["search ec2.internal", "nameserver 169.254.169.253"], said[0]
    assert said[1].stdout.strip() == "0"
    for result, name in zip(
        said[2:7],
        ["spike-bucket.s3.amazonaws.com", "my-bucket.s3.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com",
         "S3.AmazonAWS.com.", "iam.amazonaws.com"],
        strict=True,
    ):  # fmt: skip
        assert result.ok and result.stdout.split() == ["127.0.0.1", name.rstrip(".")], result
    status, milliseconds = said[7].stdout.split()
    assert status == "2" and int(milliseconds) < 2000, said[7]  # not found, at once


def test_the_dns_server_outlives_a_garbage_packet(demo: Demo) -> None:
    box = sealed_demo(demo).box
    send = "import socket; socket.socket(type=socket.SOCK_DGRAM).sendto(b'\\xff' * 40, ('169.254.169.253', 53))"
    said = box.run_lines(f'python3 -c "{send}"\ngetent hosts x.s3.amazonaws.com').results
    assert said[0].ok and said[1].stdout.split() == ["127.0.0.1", "x.s3.amazonaws.com"], said


def test_a_buckets_name_answers_over_tls_and_a_dotted_one_fails_verification(demo: Demo) -> None:
    """The certificate holds *.s3.amazonaws.com, which covers one label, as AWS's does."""
    box = sealed_demo(demo).box
    said = box.run_lines(
        "curl -sS https://anything.s3.amazonaws.com/ -o /dev/null -w '%{http_code}'\n"
        "curl -sS https://dynamodb.us-east-1.amazonaws.com/ -o /dev/null -w '%{http_code}'\n"
        "curl -sS https://a.b.s3.amazonaws.com/ -o /dev/null"
    ).results
    assert said[0].exit_code == 0 and said[0].stdout == "403", said[0]  # the gate: not signed
    assert said[1].exit_code == 0 and said[1].stdout.isdigit(), said[1]
    assert said[2].exit_code == 60, said[2]  # the peer's certificate was not OK
    assert "no alternative certificate subject name matches target host name 'a.b.s3.amazonaws.com'" in said[2].stderr


def test_the_aws_cli_reads_a_bucket_at_its_own_name(attached: Demo) -> None:
    demo = sealed_demo(attached)
    s3 = demo.lab.client("s3")
    s3.create_bucket(Bucket="spike-bucket")
    s3.put_object(Bucket="spike-bucket", Key="notes/hello.txt", Body=b"hello from the lab\n")
    demo.iam.attach_role_policy(RoleName="DemoRoleForEC2", PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    listed, copied, debug = demo.box.run_lines(
        "aws s3 ls\naws s3 cp s3://spike-bucket/notes/hello.txt -\n"
        "aws --debug s3 ls s3://spike-bucket/notes/ 2>&1 | grep -o 'https://[a-z0-9.-]*amazonaws.com' | sort -u"
    ).results
    assert listed.ok and listed.stdout.split()[-1] == "spike-bucket", listed
    assert copied.ok and copied.stdout == "hello from the lab\n", copied
    assert debug.stdout.split() == ["https://spike-bucket.s3.amazonaws.com"], debug  # virtual-hosted-style


def test_dynamodb_answers_at_its_name(attached: Demo) -> None:
    listed = sealed_demo(attached).box.run("aws dynamodb list-tables")
    assert "Could not connect" not in listed.stderr
    if listed.ok:
        assert json.loads(listed.stdout) == {"TableNames": []}
    else:  # IAMReadOnlyAccess allows no dynamodb:ListTables: the lab said so, over TLS, at that name
        assert "AccessDenied" in listed.stderr and "dynamodb:ListTables" in listed.stderr, listed
