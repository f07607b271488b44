"""Gateway credentials from Secrets as Istio resolves `credentialName` (ExtractCertInfo,
GetCaCert with the `-cacert` companion), and Secrets in the MeshSnapshot without a byte of
them in any repr or version."""

from __future__ import annotations

import dataclasses

import pytest

from isthmus.api.loader import load_documents
from isthmus.api.secret import Secret
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.credentials import (
    CaCertificate,
    SecretIndex,
    ServerCredential,
    ca_certificate,
    credential_problem,
    server_credential,
)
from isthmus.model.snapshot import MeshSnapshot
from isthmus.testing.certs import Pki, b64, secret_yaml

PKI = Pki()
OTHER_PKI = Pki("other CA")
SERVER = PKI.server()
OTHER = PKI.server("other.example.com")
NS = "istio-system"


def secrets(*documents: str) -> SecretIndex:
    loaded = load_documents("---\n".join(documents), "secrets.yaml")
    found = [o.resource for o in loaded]
    assert all(isinstance(s, Secret) for s in found)
    return SecretIndex(s for s in found if isinstance(s, Secret))


def tls_secret(name: str, **extra: bytes) -> str:
    return secret_yaml(name, {"tls.crt": SERVER.certificate, "tls.key": SERVER.key, **extra})


def opaque(name: str, **data: bytes) -> str:
    return secret_yaml(name, data, secret_type="Opaque")


def test_a_tls_secret_gives_its_chain_and_key() -> None:
    index = secrets(tls_secret("bookinfo"))

    credential = server_credential(index, NS, "bookinfo")

    assert credential == ServerCredential(SERVER.certificate, SERVER.key)
    assert credential.ca is None


def test_the_ca_in_the_same_secret_serves_mutual_tls() -> None:
    index = secrets(tls_secret("bookinfo", **{"ca.crt": PKI.ca_pem}))

    credential = server_credential(index, NS, "bookinfo")

    assert credential is not None and credential.ca_certificate == PKI.ca_pem


def test_the_cacert_companion_wins_over_the_ca_in_the_secret() -> None:
    index = secrets(
        tls_secret("bookinfo", **{"ca.crt": PKI.ca_pem}),
        opaque("bookinfo-cacert", **{"ca.crt": OTHER_PKI.ca_pem}),
    )

    credential = server_credential(index, NS, "bookinfo")

    assert credential is not None and credential.ca_certificate == OTHER_PKI.ca_pem


def test_a_companion_without_a_ca_is_no_ca_and_no_fall_back_as_in_istio() -> None:
    index = secrets(
        tls_secret("bookinfo", **{"ca.crt": PKI.ca_pem}), opaque("bookinfo-cacert", note=b"x")
    )

    assert ca_certificate(index, NS, "bookinfo") is None
    assert credential_problem(index, NS, "bookinfo", mutual=True) == (
        "secret istio-system/bookinfo-cacert: found secret, but didn't have expected keys "
        "cacert or ca.crt; found: note"
    )
    assert credential_problem(index, NS, "bookinfo", mutual=False) is None


def test_the_generic_form_is_read_first_with_cacert_before_ca_crt() -> None:
    index = secrets(
        opaque(
            "generic",
            cert=OTHER.certificate,
            key=OTHER.key,
            cacert=OTHER_PKI.ca_pem,
            **{"tls.crt": SERVER.certificate, "tls.key": SERVER.key, "ca.crt": PKI.ca_pem},
        )
    )

    credential = server_credential(index, NS, "generic")

    assert credential is not None
    assert (credential.certificate_chain, credential.private_key) == (OTHER.certificate, OTHER.key)
    assert credential.ca_certificate == OTHER_PKI.ca_pem


def test_an_empty_generic_pair_falls_back_to_the_tls_pair() -> None:
    index = secrets(tls_secret("s", cert=b"", key=b""))

    credential = server_credential(index, NS, "s")

    assert credential is not None and credential.private_key == SERVER.key


def test_the_ocsp_staple_and_the_ca_crl_are_carried() -> None:
    staple = b"\x30\x03staple"
    index = secrets(
        tls_secret("s", **{"tls.ocsp-staple": staple, "ca.crt": PKI.ca_pem, "ca.crl": PKI.crl()})
    )

    credential = server_credential(index, NS, "s")

    assert credential is not None and credential.ocsp_staple == staple
    assert credential.ca == CaCertificate(PKI.ca_pem, PKI.crl())


@pytest.mark.parametrize(
    ("documents", "name", "problem"),
    [
        ((), "missing", "secret istio-system/missing not found"),
        (
            (secret_yaml("empty", {"tls.crt": b"", "tls.key": b""}),),
            "empty",
            'found keys "tls.crt" and "tls.key", but they were empty',
        ),
        (
            (opaque("other", a=b"1", b=b"2", c=b"3", d=b"4"),),
            "other",
            "found secret, but didn't have expected keys (cert and key) or (tls.crt and "
            "tls.key); found: a, b, c, and 1 more...",
        ),
    ],
)
def test_no_credential_says_why_as_istio_logs_it(
    documents: tuple[str, ...], name: str, problem: str
) -> None:
    index = secrets(*documents) if documents else SecretIndex()

    assert server_credential(index, NS, name) is None
    assert credential_problem(index, NS, name, mutual=False) == problem


def test_secrets_are_looked_up_in_the_namespace_given() -> None:
    index = secrets(tls_secret("bookinfo"))

    assert server_credential(index, "default", "bookinfo") is None
    assert list(index) == [(NS, "bookinfo")]


# --- in the mesh, leaking nothing ------------------------------------------------------


def mesh(*documents: str) -> MeshSnapshot:
    loaded = load_documents("---\n".join(documents), "mesh.yaml")
    return build_snapshot(ConfigObject(o.resource, i + 1) for i, o in enumerate(loaded))


def _pieces(*values: bytes) -> list[str]:
    out = []
    for value in values:
        out.append(b64(value)[:24])
        out.extend(line for line in value.decode().splitlines() if not line.startswith("-----"))
        out.append(repr(value)[:40])
    return out


def test_the_mesh_snapshot_holds_the_secrets() -> None:
    snapshot = mesh(tls_secret("bookinfo"), opaque("bookinfo-cacert", cacert=PKI.ca_pem))

    assert list(snapshot.secrets) == [(NS, "bookinfo"), (NS, "bookinfo-cacert")]
    credential = server_credential(snapshot.secrets, NS, "bookinfo")
    assert credential is not None and credential.ca == CaCertificate(PKI.ca_pem)


def test_no_repr_or_version_holds_a_secret_byte() -> None:
    snapshot = mesh(tls_secret("bookinfo", **{"ca.crt": PKI.ca_pem}))
    credential = server_credential(snapshot.secrets, NS, "bookinfo")
    assert credential is not None

    shown = "\n".join(
        [
            repr(snapshot),
            str(snapshot.secrets),
            repr(dict(snapshot.secrets)),
            repr(credential),
            repr(credential.ca),
            *snapshot.input_versions.values(),
            snapshot.version,
        ]
    )

    for piece in _pieces(SERVER.certificate, SERVER.key, PKI.ca_pem):
        assert piece not in shown
    assert "SecretIndex(secrets=1, content=" in repr(snapshot)
    assert "Secret(istio-system/bookinfo, type=kubernetes.io/tls" in repr(dict(snapshot.secrets))


def test_a_changed_secret_changes_only_the_secrets_version() -> None:
    before = mesh(tls_secret("bookinfo"))
    after = mesh(secret_yaml("bookinfo", {"tls.crt": OTHER.certificate, "tls.key": OTHER.key}))
    again = mesh(tls_secret("bookinfo"))

    changed = {
        f for f in before.input_versions if before.input_versions[f] != after.input_versions[f]
    }
    assert changed == {"secrets"}
    assert before.version != after.version
    assert again.version == before.version and again.secrets == before.secrets


def test_the_secrets_field_is_an_input_of_the_snapshot() -> None:
    assert "secrets" in {f.name for f in dataclasses.fields(MeshSnapshot)}
    assert mesh().secrets == SecretIndex()
