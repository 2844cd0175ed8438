"""The instance identity document and its three signatures (/latest/dynamic/instance-identity/).

The document has the fields, order and layout of AWS's ("Instance identity documents":
accountId … version, `"key" : value`, two-space indent, lists on one line). AWS signs it with keys
only AWS holds, so no signature made here can verify against AWS's public certificates. The lab
signs with an RSA-2048 key of its own, made when the first signature is asked for and kept for
the life of the lab process:

- `signature`: base64 of the RSA SHA-256 signature of the document (AWS: the same, with its key);
- `rsa2048`: a PKCS #7 SignedData holding the document, SHA-256 with RSA-2048 (AWS: the same);
- `pkcs7`: a PKCS #7 SignedData holding the document, SHA-256 with RSA (AWS: SHA-1 with DSA, which
  the `cryptography` package no longer signs with).

Each answer is base64 in lines of 76 characters, without PEM armour, as IMDS sends them.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from labkit.labprocess.facts import InstanceFacts

DOCUMENT_VERSION = "2017-09-30"  # "version": the version of the document's format
SIGNER_NAME = "labkit lab (not AWS): instance identity"


def _json_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[ " + ", ".join(json.dumps(item) for item in value) + " ]"
    return json.dumps(value)


def document(facts: InstanceFacts) -> str:
    """The plaintext instance identity document of `facts`' instance."""
    fields: dict[str, Any] = {
        "accountId": facts.account_id,
        "architecture": facts.architecture,
        "availabilityZone": facts.availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": list(facts.product_codes) or None,
        "imageId": facts.ami_id,
        "instanceId": facts.instance_id,
        "instanceType": facts.instance_type,
        "kernelId": facts.kernel_id,
        "pendingTime": facts.launch_time.strftime("%Y-%m-%dT%H:%M:%SZ") if facts.launch_time else None,
        "privateIp": facts.local_ipv4,
        "ramdiskId": facts.ramdisk_id,
        "region": facts.region,
        "version": DOCUMENT_VERSION,
    }
    return "{\n" + ",\n".join(f"  {json.dumps(k)} : {_json_value(v)}" for k, v in fields.items()) + "\n}"


def _lines(data: bytes) -> str:
    return base64.encodebytes(data).decode().rstrip("\n")


class IdentitySigner:
    """Signs identity documents with this lab process's own key (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._material: tuple[Any, Any] | None = None

    def _key_and_certificate(self) -> tuple[Any, Any]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        with self._lock:
            if self._material is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SIGNER_NAME)])
                now = datetime.now(UTC)
                certificate = (
                    x509.CertificateBuilder()
                    .subject_name(name)
                    .issuer_name(name)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - timedelta(days=1))
                    .not_valid_after(now + timedelta(days=3650))
                    .sign(key, hashes.SHA256())
                )
                self._material = (key, certificate)
            return self._material

    def certificate_pem(self) -> str:
        """The certificate that verifies this lab's signatures (AWS's do not)."""
        from cryptography.hazmat.primitives import serialization

        return str(self._key_and_certificate()[1].public_bytes(serialization.Encoding.PEM).decode())

    def signature(self, text: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key, _ = self._key_and_certificate()
        return _lines(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()))

    def pkcs7(self, text: str) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.serialization import pkcs7

        key, certificate = self._key_and_certificate()
        signed = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(text.encode())
            .add_signer(certificate, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])  # the document as it is, LF
        )
        return _lines(signed)

    def answer(self, facts: InstanceFacts, kind: str) -> str:
        """What /latest/dynamic/instance-identity/`kind` holds for `facts`' instance."""
        text = document(facts)
        if kind == "document":
            return text
        if kind == "signature":
            return self.signature(text)
        if kind in ("pkcs7", "rsa2048"):
            return self.pkcs7(text)
        raise ValueError(f"no instance-identity/{kind}")
