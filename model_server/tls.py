"""TLS for the development model server from a TF Serving `--ssl_config_file`: a text-format SSLConfig
(tensorflow_serving/config/ssl_config.proto) holding the PEM texts themselves, not paths:

    server_key: "-----BEGIN PRIVATE KEY-----\n..."
    server_cert: "-----BEGIN CERTIFICATE-----\n..."
    custom_ca: "..."      # optional: CA of the client certificates
    client_verify: true   # optional: require client certificates signed by custom_ca (mutual TLS)

The tensorflow-serving-api package does not ship ssl_config_pb2, so the message is declared here, with
TF Serving's field names and numbers, in a pool of its own (no clash if a later package ships it).
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from model_server.config import ConfigError, read_text_proto


def _ssl_config_class():
    field = descriptor_pb2.FieldDescriptorProto
    fields = [
        ("server_key", 1, field.TYPE_STRING),
        ("server_cert", 2, field.TYPE_STRING),
        ("custom_ca", 3, field.TYPE_STRING),
        ("client_verify", 4, field.TYPE_BOOL),
    ]
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/ssl_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    file.message_type.add(
        name="SSLConfig",
        field=[field(name=n, number=i, type=t, label=field.LABEL_OPTIONAL, json_name=n) for n, i, t in fields],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


SSLConfig = _ssl_config_class()


def read_ssl_config_file(path: str) -> grpc.ServerCredentials:
    """Server credentials from an SSLConfig text file; ConfigError says what is wrong with it."""
    config = read_text_proto(path, SSLConfig(), "SSL config file")
    if not config.server_key or not config.server_cert:
        raise ConfigError(f"SSL config file '{path}' needs both server_key and server_cert (PEM texts)")
    if config.client_verify and not config.custom_ca:
        raise ConfigError(f"SSL config file '{path}': client_verify needs custom_ca, the CA of the client certificates")
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify,
    )
