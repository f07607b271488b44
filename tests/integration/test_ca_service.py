"""The mesh CA on a real isthmusd's gRPC socket (Istio's CreateCertificate): it signs a
pod's CSR only for that pod's own SPIFFE id, with a token isthmusd issued for that pod,
while the pod exists; every refusal is answered with a reason and logged."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from isthmus.certificate_service import (
    METHOD_PATH,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from isthmus.testing.daemon import wait_for
from isthmus.testing.mesh import NAMESPACE, Mesh

NODE = "ca-node"
IDENTITY = f"spiffe://cluster.local/ns/{NAMESPACE}/sa/inventory"


def pod(name: str, uid: str, service_account: str = "inventory") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid, "labels": {"app": "x"}},
        "spec": {"nodeName": NODE, "serviceAccountName": service_account, "containers": []},
        "status": {"phase": "Pending", "startTime": "2026-12-02T00:00:00Z"},
    }


def report(mesh: Mesh, pods: list[dict[str, Any]]) -> None:
    answer = mesh.daemon.client.put("/v1/node/pods", json={"node": NODE, "pods": pods})
    assert answer.status_code == 200, answer.text


def token(mesh: Mesh, name: str, uid: str, service_account: str = "inventory") -> str:
    answer = mesh.daemon.client.post(
        "/v1/node/tokens",
        json={"namespace": NAMESPACE, "pod": name, "uid": uid, "serviceAccount": service_account},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def csr(*uris: str, dns: str | None = None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    if dns:
        names.append(x509.DNSName(dns))
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(Encoding.PEM).decode()


def create(mesh: Mesh, pem: str, bearer: str | None, seconds: int = 0) -> list[str]:
    with grpc.insecure_channel(f"unix:{mesh.daemon.xds_socket}") as channel:
        call = channel.unary_unary(
            METHOD_PATH,
            request_serializer=IstioCertificateRequest.SerializeToString,
            response_deserializer=IstioCertificateResponse.FromString,
        )
        metadata = (("authorization", f"Bearer {bearer}"),) if bearer is not None else ()
        answer = call(
            IstioCertificateRequest(csr=pem, validity_duration=seconds),
            metadata=metadata,
            timeout=10,
        )
    return list(answer.cert_chain)


@pytest.fixture(scope="module")
def reported(mesh: Mesh) -> Iterator[str]:
    uid = secrets.token_hex(8)
    report(mesh, [pod("inventory-1", uid)])
    yield uid
    report(mesh, [])


def refusal(mesh: Mesh, pem: str, bearer: str | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        create(mesh, pem, bearer)
    return raised.value


def test_signs_the_pods_own_identity_leaf_first_root_last(mesh: Mesh, reported: str) -> None:
    chain = create(mesh, csr(IDENTITY), token(mesh, "inventory-1", reported), seconds=120)

    leaf, root = (x509.load_pem_x509_certificate(p.encode()) for p in (chain[0], chain[-1]))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [IDENTITY]
    leaf.verify_directly_issued_by(root)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(seconds=180)


@pytest.mark.parametrize(
    ("case", "expected_code", "reason"),
    [
        ("forged token", grpc.StatusCode.UNAUTHENTICATED, "token rejected"),
        ("no token", grpc.StatusCode.UNAUTHENTICATED, "no bearer token"),
        ("token of a pod that is gone", grpc.StatusCode.PERMISSION_DENIED, "does not exist"),
        ("token of an earlier pod of the name", grpc.StatusCode.PERMISSION_DENIED, "uid"),
        ("foreign SAN", grpc.StatusCode.INVALID_ARGUMENT, "csr rejected"),
        ("extra DNS SAN", grpc.StatusCode.INVALID_ARGUMENT, "csr rejected"),
        ("another service account", grpc.StatusCode.PERMISSION_DENIED, "service account"),
    ],
)
def test_refuses_and_logs(
    mesh: Mesh, reported: str, case: str, expected_code: grpc.StatusCode, reason: str
) -> None:
    good = token(mesh, "inventory-1", reported)
    pem, bearer = csr(IDENTITY), good
    if case == "forged token":
        head, payload, _ = good.split(".")
        bearer = f"{head}.{payload}.{'A' * 43}"
    elif case == "no token":
        bearer = None
    elif case == "token of a pod that is gone":
        bearer = token(mesh, "inventory-2", reported)
    elif case == "token of an earlier pod of the name":
        bearer = token(mesh, "inventory-1", "an-older-uid")
    elif case == "foreign SAN":
        pem = csr(f"spiffe://cluster.local/ns/{NAMESPACE}/sa/payments")
    elif case == "extra DNS SAN":
        pem = csr(IDENTITY, dns="inventory.production.svc")
    elif case == "another service account":
        bearer = token(mesh, "inventory-1", reported, service_account="payments")

    error = refusal(mesh, pem, bearer)

    assert error.code() == expected_code
    assert reason in (error.details() or "")
    wait_for(
        lambda: (
            "certificate_refused" in mesh.daemon.log_text()
            and (error.details() or "")[:40] in mesh.daemon.log_text()
        ),
        timeout=10,
        what=f"the refusal ({case}) in isthmusd's log",
    )


def test_token_requests_need_every_field(mesh: Mesh) -> None:
    answer = mesh.daemon.client.post("/v1/node/tokens", json={"namespace": NAMESPACE})

    assert answer.status_code == 400
    assert "needs non-empty strings" in answer.text


def test_ca_files_are_private(mesh: Mesh) -> None:
    ca_dir = mesh.daemon.home / "ca"

    assert (ca_dir.stat().st_mode & 0o777) == 0o700
    keys = [p for p in ca_dir.iterdir() if "key" in p.name]
    assert keys
    assert all((p.stat().st_mode & 0o077) == 0 for p in keys)
