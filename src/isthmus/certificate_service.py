"""Istio's certificate API (istio.v1.auth.IstioCertificateService), shared by the CA
server in isthmusd and the client in the sidecar agent.

The messages are Istio's (security/proto/istioca.proto): a CSR and a requested validity
in seconds in, the certificate chain out, leaf first and root last. Caller identity is a
bearer token in the `authorization` metadata, as istio-agent sends its service-account
token. No Python package ships these protos, so the two messages are declared here from
a FileDescriptorProto; the wire format is exactly Istio's.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    struct_pb2,  # noqa: F401  (registers google/protobuf/struct.proto)
)

SERVICE = "istio.v1.auth.IstioCertificateService"
METHOD = "CreateCertificate"
METHOD_PATH = f"/{SERVICE}/{METHOD}"
AUTHORIZATION = "authorization"
BEARER = "Bearer "

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="isthmus/istioca.proto",
        package="istio.v1.auth",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto"],
    )
    request = proto.message_type.add(name="IstioCertificateRequest")
    request.field.add(name="csr", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    request.field.add(
        name="validity_duration", number=3, type=_F.TYPE_INT64, label=_F.LABEL_OPTIONAL
    )
    request.field.add(
        name="metadata",
        number=4,
        type=_F.TYPE_MESSAGE,
        type_name=".google.protobuf.Struct",
        label=_F.LABEL_OPTIONAL,
    )
    response = proto.message_type.add(name="IstioCertificateResponse")
    response.field.add(name="cert_chain", number=1, type=_F.TYPE_STRING, label=_F.LABEL_REPEATED)
    return proto


def _messages() -> tuple[type[Any], type[Any]]:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("isthmus/istioca.proto")
    except KeyError:
        pool.Add(_file())
    request = pool.FindMessageTypeByName("istio.v1.auth.IstioCertificateRequest")
    response = pool.FindMessageTypeByName("istio.v1.auth.IstioCertificateResponse")
    return message_factory.GetMessageClass(request), message_factory.GetMessageClass(response)


IstioCertificateRequest, IstioCertificateResponse = _messages()
