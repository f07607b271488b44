"""The Secret kind: Kubernetes' rules, the PEM checks for gateway credentials, stringData
merged on apply, update rules, and that no message or repr ever holds a secret byte."""

from __future__ import annotations

import base64
import datetime
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.api.checks_secret import MAX_SECRET_BYTES, secret_warnings
from isthmus.api.errors import ApiError
from isthmus.api.loader import LoadedObject, load_documents, parse_resource
from isthmus.api.registry import resolve_kind_name
from isthmus.api.secret import Secret
from isthmus.api.updates import update_problems
from isthmus.testing.certs import KeyPair, Pki, b64, secret_yaml

PKI = Pki()
SERVER = PKI.server()
OTHER = PKI.server("other.example.com")


def load_one(text: str) -> LoadedObject:
    (loaded,) = load_documents(text, "secret.yaml")
    return loaded


def errors(text: str) -> list[str]:
    with pytest.raises(ApiError) as caught:
        load_documents(text, "secret.yaml")
    return caught.value.errors


def secret_lines(*values: bytes) -> list[str]:
    """What must never be shown of `values`: each one's base64, and every line of its
    PEM body long enough to be a real piece of it."""
    out = []
    for value in values:
        out.append(b64(value)[:40])
        out.extend(
            line
            for line in value.decode(errors="replace").splitlines()
            if len(line) >= 16 and not line.startswith("-----")
        )
    return out


def assert_no_secret(texts: list[str], *values: bytes) -> None:
    joined = "\n".join(texts)
    for piece in secret_lines(*values):
        assert piece not in joined


def tls(pair: KeyPair = SERVER, /, **extra: bytes) -> dict[str, bytes]:
    return {"tls.crt": pair.certificate, "tls.key": pair.key, **extra}


# --- accepted ------------------------------------------------------------------------


def test_a_tls_secret_with_a_ca_loads_and_is_stored_as_given() -> None:
    loaded = load_one(secret_yaml("bookinfo-credential", tls(**{"ca.crt": PKI.ca_pem})))

    secret = loaded.resource
    assert isinstance(secret, Secret)
    assert loaded.key == ("Secret", "istio-system", "bookinfo-credential")
    assert secret.secret_type == "kubernetes.io/tls"
    assert secret.decoded == {
        "ca.crt": PKI.ca_pem,
        "tls.crt": SERVER.certificate,
        "tls.key": SERVER.key,
    }
    assert loaded.body["data"]["tls.key"] == b64(SERVER.key)
    assert "stringData" not in loaded.body


def test_the_generic_form_loads_with_its_cacert_companion() -> None:
    text = (
        secret_yaml(
            "generic", {"cert": SERVER.certificate, "key": SERVER.key}, secret_type="Opaque"
        )
        + "---\n"
        + secret_yaml("generic-cacert", {"cacert": PKI.ca_pem}, secret_type=None)
    )

    first, second = load_documents(text, "secret.yaml")

    assert first.resource.kind == second.resource.kind == "Secret"
    assert isinstance(second.resource, Secret) and second.resource.secret_type == "Opaque"


def test_string_data_is_merged_into_data_on_apply_and_wins() -> None:
    text = secret_yaml(
        "merged",
        {"tls.crt": SERVER.certificate, "tls.key": OTHER.key, "note": b"from data"},
        string_data={"tls.key": SERVER.key.decode(), "extra": "plain text"},
    )

    loaded = load_one(text)

    assert list(loaded.body) == ["apiVersion", "kind", "metadata", "type", "data"]
    assert loaded.body["data"] == {
        "extra": b64("plain text\n"),
        "note": b64("from data"),
        "tls.crt": b64(SERVER.certificate),
        "tls.key": b64(SERVER.key),
    }
    stored = parse_resource(loaded.body)
    assert isinstance(stored, Secret) and stored.string_data == {}
    assert stored.decoded["tls.key"] == SERVER.key


def test_only_string_data_is_stored_as_data_in_its_place() -> None:
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
        "stringData: {password: hunter2}\nimmutable: true\n"
    )

    body = load_one(text).body

    assert list(body) == ["apiVersion", "kind", "metadata", "data", "immutable"]
    assert body["data"] == {"password": b64("hunter2")}


def test_data_is_stored_in_canonical_base64_with_line_breaks_removed() -> None:
    wrapped = "\n".join(re.findall(".{1,20}", b64(SERVER.certificate)))
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  cert.pem: |\n" + "".join(
        f"    {line}\n" for line in wrapped.splitlines()
    )

    assert load_one(text).body["data"] == {"cert.pem": b64(SERVER.certificate)}


@pytest.mark.parametrize(
    "data",
    [
        {"tls.crt": b"", "tls.key": b""},  # Kubernetes accepts empty values; Istio finds none
        {"key": b"an API key, not PEM", "token": b"\x00\xff binary"},  # not a credential
        {"cert": b"not PEM either"},  # the generic form needs cert and key
        {},
    ],
)
def test_what_kubernetes_accepts_and_istio_does_not_read_as_a_credential_loads(
    data: dict[str, bytes],
) -> None:
    secret_type = "kubernetes.io/tls" if "tls.crt" in data else "Opaque"
    load_one(secret_yaml("s", data, secret_type=secret_type))


@pytest.mark.parametrize("key_kind", ["rsa2048", "ec256", "ec384", "ec521", "ed25519"])
def test_every_key_type_envoy_serves_is_accepted(key_kind: str) -> None:
    pair = PKI.server(key_kind=key_kind, self_signed=True)
    load_one(secret_yaml("s", tls(pair)))


def test_secret_is_a_core_v1_kind_named_as_kubectl_names_it() -> None:
    for spelling in ("secret", "secrets", "Secret", "secrets.v1."):
        info = resolve_kind_name(spelling)
        assert info is not None and info.kind == "Secret"
        assert info.api_versions == ("v1",) and info.namespaced


# --- refused -------------------------------------------------------------------------


def test_types_other_than_opaque_and_tls_are_not_supported_yet() -> None:
    lines = errors(
        secret_yaml("s", {".dockerconfigjson": b"{}"}, secret_type="kubernetes.io/dockerconfigjson")
    )

    assert lines == [
        'secret.yaml:1 Secret istio-system/s: type: Secret type "kubernetes.io/dockerconfigjson" '
        "is not supported yet (isthmus accepts Opaque and kubernetes.io/tls)"
    ]


def test_a_tls_secret_needs_both_of_its_keys() -> None:
    lines = errors(secret_yaml("s", {"tls.crt": SERVER.certificate}))

    assert lines == [
        "secret.yaml:1 Secret istio-system/s: data[tls.key]: is required for type kubernetes.io/tls"
    ]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("bad/key", "a valid secret key must consist of alphanumeric characters"),
        ("..hidden", "must not start with '..'"),
        ("..", "must not be '..'"),
        ("k" * 254, "must be no more than 253 characters"),
    ],
)
def test_keys_must_be_kubernetes_secret_keys(key: str, message: str) -> None:
    text = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{'{key}': YQ==}}\n"

    (line,) = errors(text)

    assert message in line


def test_data_values_must_be_base64_and_the_message_never_shows_them() -> None:
    value = "not*base64*but*a*password*hunter2"
    text = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{password: '{value}'}}\n"

    (line,) = errors(text)

    assert line == (
        "secret.yaml:1 Secret default/s: data[password]: must be base64-encoded (as Kubernetes "
        "stores Secret data); write plain text under stringData instead"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("data: {token: 123456789012}", "data[token]: must be a string (got a number)"),
        ("stringData: {token: 123456789012}", "stringData[token]: must be a string (got a number)"),
        (
            "data: c2VjcmV0LXZhbHVlLTEyMzQ1",
            "data: must be a mapping of keys to values (got a string)",
        ),
        (
            "stringData: [secret-value-12345]",
            "stringData: must be a mapping of keys to values (got a list)",
        ),
    ],
)
def test_structural_problems_name_the_kind_of_value_never_the_value(
    document: str, message: str
) -> None:
    (line,) = errors(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{document}\n")

    assert message in line
    assert "123456789012" not in line
    assert "c2VjcmV0LXZhbHVlLTEyMzQ1" not in line and "secret-value-12345" not in line


def test_secret_data_is_limited_to_a_mebibyte_as_in_kubernetes() -> None:
    blob = b"x" * (MAX_SECRET_BYTES // 2)

    (line,) = errors(secret_yaml("s", {"a": blob, "b": blob}, secret_type="Opaque"))

    assert "data: must hold at most 1048576 bytes in all (has 1048578)" in line


def test_a_key_that_does_not_match_its_certificate_is_refused_without_showing_either() -> None:
    lines = errors(secret_yaml("s", {"tls.crt": SERVER.certificate, "tls.key": OTHER.key}))

    assert lines == [
        "secret.yaml:1 Secret istio-system/s: data[tls.key]: the private key does not match "
        "the certificate in data[tls.crt]"
    ]
    assert_no_secret(lines, SERVER.certificate, OTHER.key)


def test_the_generic_pair_is_checked_like_the_tls_pair() -> None:
    data = {"cert": SERVER.certificate, "key": OTHER.key}

    (line,) = errors(secret_yaml("s", data, secret_type="Opaque"))

    assert line.endswith("data[key]: the private key does not match the certificate in data[cert]")


def _garbled(pem: bytes) -> bytes:
    """The same PEM framing around a body that is base64 but not DER."""
    lines = pem.splitlines()
    return b"\n".join([lines[0], base64.b64encode(b"\x30\x03garbage" * 8), lines[-1]]) + b"\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (tls(**{"tls.crt": b"hello"}), "data[tls.crt]: must hold PEM certificates"),
        (
            tls(**{"tls.crt": _garbled(SERVER.certificate)}),
            "data[tls.crt]: the certificate does not parse",
        ),
        (
            tls(**{"tls.crt": SERVER.certificate + _garbled(PKI.ca_pem)}),
            "data[tls.crt]: certificate 3 does not parse",
        ),
        (tls(**{"tls.key": SERVER.certificate}), "data[tls.key]: must hold a PEM private key"),
        (tls(**{"tls.key": _garbled(SERVER.key)}), "data[tls.key]: the private key does not parse"),
        (
            tls(**{"tls.key": SERVER.encrypted_key()}),
            "data[tls.key]: the private key is encrypted; Istio's gateways need it unencrypted",
        ),
        (tls(**{"ca.crt": b"not a CA"}), "data[ca.crt]: must hold PEM certificates"),
        (tls(**{"ca.crl": b"not a CRL"}), "data[ca.crl]: must hold PEM revocation lists"),
    ],
)
def test_pem_contents_must_parse(data: dict[str, bytes], message: str) -> None:
    (line,) = errors(secret_yaml("s", data))

    assert line.startswith(f"secret.yaml:1 Secret istio-system/s: {message}"), line
    assert_no_secret([line], *data.values())


def test_a_cacert_companion_must_hold_certificates() -> None:
    (line,) = errors(secret_yaml("s-cacert", {"cacert": b"oops"}, secret_type=None))

    assert "data[cacert]: must hold PEM certificates" in line


@pytest.mark.parametrize(
    ("key_kind", "message"),
    [
        (
            "rsa1024",
            "the certificate's RSA key has 1024 bits; "
            "Envoy serves only RSA keys of at least 2048 bits",
        ),
        ("secp256k1", "the certificate's ECDSA curve secp256k1 is not supported by Envoy"),
    ],
)
def test_key_types_envoy_does_not_serve_are_refused(key_kind: str, message: str) -> None:
    pair = PKI.server(key_kind=key_kind, self_signed=True)

    (line,) = errors(secret_yaml("s", tls(pair)))

    assert f"data[tls.crt]: {message}" in line


def test_string_data_problems_are_reported_where_the_value_was_written() -> None:
    text = secret_yaml(
        "s", {"tls.crt": SERVER.certificate}, string_data={"tls.key": OTHER.key.decode()}
    )

    (line,) = errors(text)

    assert (
        "stringData[tls.key]: the private key does not match the certificate in data[tls.crt]"
        in line
    )


# --- never leaked --------------------------------------------------------------------


def test_the_repr_and_str_of_a_secret_name_keys_only() -> None:
    secret = load_one(secret_yaml("s", tls(), string_data={"extra": "hunter2-password"})).resource

    for shown in (repr(secret), str(secret), f"{secret}"):
        assert shown == (
            "Secret(istio-system/s, type=kubernetes.io/tls, keys=['extra', 'tls.crt', 'tls.key'])"
        )


@settings(max_examples=80, deadline=None)
@given(
    field=st.sampled_from(["data", "stringData"]),
    key=st.sampled_from(["tls.crt", "tls.key", "ca.crt", "cacert", "cert", "key", "password"]),
    value=st.binary(min_size=16, max_size=200),
    encode=st.booleans(),
)
def test_no_problem_line_ever_holds_a_value(
    field: str, key: str, value: bytes, encode: bool
) -> None:
    """Whatever a value holds (base64 or not, PEM or not, under data or stringData), no
    error line shows it, as written or decoded."""
    shown = b64(value) if encode and field == "data" else value.decode("latin-1")
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
        f"{field}: {{{json.dumps(key)}: {json.dumps(shown)}}}\n"
    )
    try:
        load_documents(text, "secret.yaml")
    except ApiError as error:
        joined = "\n".join(error.errors)
        for piece in (shown, " ".join(shown.split()), value.decode("latin-1")):
            assert len(piece) < 12 or piece not in joined


# --- warnings and updates ------------------------------------------------------------


def test_an_expired_certificate_is_a_warning_not_an_error() -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = PKI.server(
        valid_from=now - datetime.timedelta(days=10), valid_until=now - datetime.timedelta(days=1)
    )
    secret = load_one(secret_yaml("old", tls(expired))).resource
    assert isinstance(secret, Secret)

    (warning,) = secret_warnings(secret)

    assert warning.startswith("Secret istio-system/old: data[tls.crt]: the certificate expired at ")
    assert warning.endswith("; clients will refuse it")
    fresh = load_one(secret_yaml("new", tls())).resource
    assert isinstance(fresh, Secret) and secret_warnings(fresh) == []


def _stored(text: str) -> dict[str, object]:
    return load_one(text).body


def test_the_type_of_a_secret_never_changes() -> None:
    old = _stored(secret_yaml("s", {"a": b"1"}, secret_type=None))
    new = _stored(secret_yaml("s", tls()))

    (problem,) = update_problems("Secret", old, new)

    assert (
        problem.render()
        == "type: field is immutable; delete the Secret and create it again to change it"
    )
    same = _stored(secret_yaml("s", {"a": b"2"}, secret_type="Opaque"))
    assert update_problems("Secret", old, same) == []  # unset type is Opaque


def test_an_immutable_secret_keeps_its_data_and_stays_immutable() -> None:
    old = _stored(secret_yaml("s", tls(), immutable=True))
    changed = _stored(secret_yaml("s", tls(OTHER), immutable=True))
    released = _stored(secret_yaml("s", tls(), immutable=False))
    relabelled = _stored(
        secret_yaml("s", tls(), immutable=True).replace(
            "  namespace:", "  labels: {a: b}\n  namespace:"
        )
    )

    assert [p.path for p in update_problems("Secret", old, changed)] == ["data"]
    assert [p.path for p in update_problems("Secret", old, released)] == ["immutable"]
    assert update_problems("Secret", old, relabelled) == []
    assert update_problems("Secret", _stored(secret_yaml("s", tls())), changed) == []
