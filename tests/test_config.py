"""config/client, config/identity and config/sts: write semantics, texts, stricter rules,
read shapes and storage."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend.errors import BackendError, InternalError, InvalidRequestError
from aws_iam_backend.vault.config import (
    CLIENT_CONFIG_FIELDS,
    IDENTITY_CONFIG_FIELDS,
    ClientConfig,
    IdentityConfig,
    StsRoleConfig,
    client_config_from_storage,
    client_config_read_data,
    client_config_to_storage,
    identity_config_from_storage,
    identity_config_read_data,
    identity_config_to_storage,
    sts_config_from_storage,
    sts_config_read_data,
    sts_config_to_storage,
    write_client_config,
    write_identity_config,
    write_sts_config,
)

FORBIDDEN = {"Host", "Authorization", "Transfer-Encoding", "X-Amz-Target", "Content-Length"}


def validate_headers(names: Sequence[str]) -> tuple[str, ...]:
    """Stand-in for sts_request.validate_allowed_header_names."""
    for name in names:
        if name in FORBIDDEN:
            raise InvalidRequestError(f"header {name} cannot be allowed")
    return tuple(dict.fromkeys(names))


def client(data: dict[str, object], existing: ClientConfig | None = None) -> ClientConfig:
    return write_client_config(existing, data, validate_headers=validate_headers)


def client_error(data: dict[str, object]) -> str:
    with pytest.raises(InvalidRequestError) as info:
        client(data)
    assert info.value.status == 400
    return info.value.message


# ----------------------------------------------------------------- config/client


def test_client_create_defaults_and_update() -> None:
    cfg = client({"access_key": "AKIA", "secret_key": "s", "iam_server_id_header_value": "v"})
    assert cfg == ClientConfig(access_key="AKIA", secret_key="s", iam_server_id_header_value="v")
    assert cfg.max_retries == -1
    updated = client({"max_retries": "5", "use_sts_region_from_client": "true"}, cfg)
    assert (updated.access_key, updated.max_retries, updated.use_sts_region_from_client) == (
        "AKIA", 5, True)


def test_allowed_headers_canonicalised_then_validated() -> None:
    cfg = client({"allowed_sts_header_values": "x-amz-foo, md5sum-x,X-AMZ-FOO"})
    assert cfg.allowed_sts_header_values == ("X-Amz-Foo", "Md5sum-X")


@pytest.mark.parametrize("name", ["host", "authorization", "transfer-encoding", "x-amz-target",
                                  "Content-Length"])
def test_attack_99_forbidden_allowed_headers(name: str) -> None:
    assert "cannot be allowed" in client_error({"allowed_sts_header_values": [name]})


@pytest.mark.parametrize(
    "url",
    ["https://sts.amazonaws.com", "https://sts.us-west-2.amazonaws.com/",
     "https://vpce-1.sts.us-east-1.vpce.amazonaws.com", "https://10.0.0.5",
     "https://sts.example.internal:8443", "http://127.0.0.1:4566", "http://localhost:5000/",
     "http://[::1]:4566", "HTTPS://STS.AMAZONAWS.COM", "https://[2001:db8::1]"],
)
def test_endpoints_accepted(url: str) -> None:
    for field in ("sts_endpoint", "iam_endpoint", "endpoint"):
        assert getattr(client({field: url}), field) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://sts.amazonaws.com", "https URL"),
        ("http://10.0.0.5", "https URL"),
        ("ftp://sts.amazonaws.com", "https URL"),
        ("sts.amazonaws.com", "https URL"),
        ("https://user@sts.amazonaws.com", "userinfo"),
        ("https://user:pw@127.0.0.1", "userinfo"),
        ("https://sts.amazonaws.com/path?x", "query or fragment"),
        ("https://sts.amazonaws.com/?", "query or fragment"),
        ("https://sts.amazonaws.com/#f", "query or fragment"),
        ("https://sts.amazonaws.com/path", "path is not allowed"),
        ("https://sts.amazonaws.com:99999", "not a valid URL"),
        ("https://sts.amazonaws.com:0", "not a valid host"),
        ("https://", "not a valid host"),
        ("https://bad_host!", "not a valid host"),
        ("https://[zz]", "not a valid"),
        ("https://sts.amazonaws.com /", "printable ASCII"),
        ("https://st\u015b.amazonaws.com", "printable ASCII"),
    ],
)
def test_attack_98_bad_endpoints(url: str, reason: str) -> None:
    message = client_error({"sts_endpoint": url})
    assert message.startswith('invalid sts_endpoint "')
    assert reason in message


def test_empty_endpoint_unsets() -> None:
    cfg = client({"sts_endpoint": "https://sts.amazonaws.com"})
    assert client({"sts_endpoint": ""}, cfg).sts_endpoint == ""


def test_max_retries_bounds() -> None:
    assert client({"max_retries": -1}).max_retries == -1
    assert client({"max_retries": 0}).max_retries == 0
    assert "max_retries must be -1" in client_error({"max_retries": -2})
    assert client_error({"max_retries": "x"}).startswith(
        'Field validation failed: error converting input for field "max_retries"'
    )


def test_server_id_value_rules() -> None:
    assert "printable ASCII" in client_error({"iam_server_id_header_value": "a\nb"})
    assert "leading or trailing" in client_error({"iam_server_id_header_value": " vault"})
    assert "printable ASCII" in client_error({"iam_server_id_header_value": "x" * 8193})
    assert client({"iam_server_id_header_value": "vault.example.com"}).iam_server_id_header_value


@pytest.mark.parametrize(
    ("field", "value"),
    [("role_arn", "arn:aws:iam::123456789012:role/wif"), ("identity_token_audience", "aud"),
     ("identity_token_ttl", "1h")],
)
def test_workload_identity_fields_refused(field: str, value: str) -> None:
    assert client_error({field: value}).startswith(f"{field} is not supported")


def test_workload_identity_empty_values_accepted() -> None:
    assert client({"role_arn": "", "identity_token_audience": "", "identity_token_ttl": 0})


def test_client_read_never_returns_secret() -> None:
    cfg = client({"access_key": "AKIA", "secret_key": "TOPSECRET",
                  "allowed_sts_header_values": "x-amz-a"})
    data = client_config_read_data(cfg)
    assert "secret_key" not in data
    assert "TOPSECRET" not in repr(data)
    assert "TOPSECRET" not in repr(cfg)
    assert data == {
        "access_key": "AKIA", "endpoint": "", "iam_endpoint": "", "sts_endpoint": "",
        "sts_region": "", "use_sts_region_from_client": False, "iam_server_id_header_value": "",
        "max_retries": -1, "allowed_sts_header_values": ["X-Amz-A"], "role_arn": "",
        "identity_token_audience": "", "identity_token_ttl": 0,
        "replay_protection": False, "require_challenge": False,
    }


def test_client_storage_round_trip() -> None:
    cfg = client({"access_key": "AKIA", "secret_key": "s", "max_retries": 2,
                  "sts_endpoint": "https://sts.amazonaws.com",
                  "allowed_sts_header_values": "x-amz-a"})
    doc = client_config_to_storage(cfg)
    assert doc["secret_key"] == "s"
    assert client_config_from_storage(doc) == cfg
    assert client_config_from_storage({}) == ClientConfig()
    vault_doc = {"access_key": "", "allowed_sts_header_values": None, "max_retries": 3,
                 "rotation_period": 0}
    assert client_config_from_storage(vault_doc) == ClientConfig(max_retries=3)
    with pytest.raises(InternalError):
        client_config_from_storage({"max_retries": "3"})


# --------------------------------------------------------------- config/identity


def identity(data: dict[str, object], existing: IdentityConfig | None = None) -> IdentityConfig:
    return write_identity_config(existing, data)


def identity_error(data: dict[str, object]) -> str:
    with pytest.raises(InvalidRequestError) as info:
        identity(data)
    return info.value.message


def test_identity_defaults_read() -> None:
    assert identity_config_read_data(IdentityConfig()) == {
        "iam_alias": "role_id", "iam_metadata": ["account_id", "auth_type"],
        "ec2_alias": "role_id", "ec2_metadata": ["account_id", "auth_type"],
    }


@pytest.mark.parametrize("alias", ["role_id", "unique_id", "full_arn", "canonical_arn"])
def test_iam_alias_values(alias: str) -> None:
    assert identity({"iam_alias": alias}).iam_alias == alias


def test_alias_errors() -> None:
    assert identity_error({"iam_alias": "arn"}) == (
        'iam_alias of "arn" not in set of allowed values: '
        "[role_id unique_id full_arn canonical_arn]"
    )
    assert identity_error({"iam_alias": ""}).startswith('iam_alias of "" not in set')
    assert identity_error({"ec2_alias": "x"}) == (
        'ec2_alias of "x" not in set of allowed values: [role_id instance_id image_id]'
    )


def test_iam_metadata_rules() -> None:
    cfg = identity({"iam_metadata": " Client_ARN, canonical_arn,client_arn"})
    assert cfg.iam_metadata == ("canonical_arn", "client_arn")
    assert identity({"iam_metadata": "default"}, cfg).iam_metadata == ("account_id", "auth_type")
    assert identity({"iam_metadata": ""}, cfg).iam_metadata == ()
    assert identity({"iam_metadata": []}, cfg).iam_metadata == ()
    assert identity({"iam_alias": "full_arn"}, cfg).iam_metadata == cfg.iam_metadata
    assert identity({"ec2_metadata": "ami_id,region"}).ec2_metadata == ("ami_id", "region")


def test_iam_metadata_errors() -> None:
    assert identity_error({"iam_metadata": "default,client_arn"}) == (
        '["client_arn" "default"] contains default - default can\'t be used in combination '
        "with other fields"
    )
    assert identity_error({"iam_metadata": "client_arn,secret"}) == (
        '"client_arn, secret" contains an unavailable field, please select from '
        '"account_id, auth_type, canonical_arn, client_arn, client_user_id, '
        'inferred_aws_region, inferred_entity_id, inferred_entity_type, inferred_hostname"'
    )
    assert "ami_id, instance_id, region" in identity_error({"ec2_metadata": "client_arn"})


def test_identity_storage_shape_and_round_trip() -> None:
    default_doc = identity_config_to_storage(IdentityConfig())
    assert default_doc == {
        "iam_alias": "role_id", "iam_auth_metadata_handler": {"auth_metadata": None},
        "ec2_alias": "role_id", "ec2_auth_metadata_handler": {"auth_metadata": None},
    }
    cfg = identity({"iam_alias": "unique_id", "iam_metadata": "", "ec2_metadata": "region"})
    doc = identity_config_to_storage(cfg)
    assert doc["iam_auth_metadata_handler"] == {"auth_metadata": []}
    assert identity_config_from_storage(doc) == cfg
    assert identity_config_from_storage({"iam_alias": ""}) == IdentityConfig()
    with pytest.raises(InternalError):
        identity_config_from_storage({"iam_auth_metadata_handler": []})


# ------------------------------------------------------------------ config/sts

ACCOUNT = "123456789012"
STS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/vault-lookup"


def sts_error(account: str, data: dict[str, object],
              existing: StsRoleConfig | None = None) -> str:
    with pytest.raises(InvalidRequestError) as info:
        write_sts_config(account, data, existing)
    return info.value.message


def test_sts_write_read_storage() -> None:
    entry = write_sts_config(ACCOUNT, {"sts_role": STS_ROLE, "external_id": "ext-1"})
    assert entry == StsRoleConfig(ACCOUNT, STS_ROLE, "ext-1")
    assert sts_config_read_data(entry) == {"sts_role": STS_ROLE, "external_id": "ext-1"}
    assert sts_config_from_storage(ACCOUNT, sts_config_to_storage(entry)) == entry
    assert sts_config_from_storage(ACCOUNT, {"sts_role": STS_ROLE}).external_id == ""
    updated = write_sts_config(ACCOUNT, {"external_id": ""}, entry)
    assert updated == StsRoleConfig(ACCOUNT, STS_ROLE, "")


def test_sts_vault_texts() -> None:
    assert sts_error("", {"sts_role": STS_ROLE}) == "missing AWS account ID"
    assert sts_error(ACCOUNT, {}) == "missing sts role"
    assert sts_error(ACCOUNT, {"sts_role": ""}) == "sts role cannot be empty"
    existing = StsRoleConfig(ACCOUNT, STS_ROLE)
    assert sts_error(ACCOUNT, {"sts_role": ""}, existing) == "sts role cannot be empty"


@pytest.mark.parametrize("account", ["12345678901", "1234567890123", "12345678901a",
                                     "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10\uff11\uff12"])
def test_sts_account_must_be_12_digits(account: str) -> None:
    assert "must be 12 digits" in sts_error(account, {"sts_role": STS_ROLE})


@pytest.mark.parametrize(
    "role",
    ["not-an-arn", "arn:aws:iam::999999999999:role/x", "arn:aws-evil:iam::123456789012:role/x",
     "arn:aws:iam::123456789012:user/x", "arn:aws:sts::123456789012:assumed-role/r/s",
     "arn:aws:iam::123456789012:role/", "arn:aws:iam:us-east-1:123456789012:role/x",
     "arn:aws:iam::123456789012:role/a b"],
)
def test_sts_role_must_be_role_in_same_account(role: str) -> None:
    assert sts_error(ACCOUNT, {"sts_role": role}).startswith(f'invalid sts_role "{role}"')


def test_sts_external_id_rules() -> None:
    assert "invalid external_id" in sts_error(ACCOUNT, {"sts_role": STS_ROLE, "external_id": "x"})
    assert "invalid external_id" in sts_error(
        ACCOUNT, {"sts_role": STS_ROLE, "external_id": "a b"})


# ------------------------------------------------------------------ hypothesis

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
SAMPLES = st.sampled_from(["https://sts.amazonaws.com", "http://127.0.0.1:1", "x-amz-foo",
                           "default", "client_arn", "unique_id", "-1", "host"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(CLIENT_CONFIG_FIELDS)), JSONISH | SAMPLES,
                       max_size=6))
def test_write_client_config_only_raises_backend_errors(data: dict[str, object]) -> None:
    try:
        cfg = client(data)
    except BackendError:
        return
    assert client_config_from_storage(client_config_to_storage(cfg)) == cfg


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(IDENTITY_CONFIG_FIELDS)), JSONISH | SAMPLES,
                       max_size=4))
def test_write_identity_config_only_raises_backend_errors(data: dict[str, object]) -> None:
    try:
        cfg = identity(data)
    except BackendError:
        return
    assert identity_config_from_storage(identity_config_to_storage(cfg)) == cfg


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=14) | st.just(ACCOUNT),
       st.dictionaries(st.sampled_from(["sts_role", "external_id", "account_id"]),
                       JSONISH | st.just(STS_ROLE), max_size=3))
def test_write_sts_config_only_raises_backend_errors(account: str, data: dict[str, object]) -> None:
    try:
        entry = write_sts_config(account, data)
    except BackendError:
        return
    assert sts_config_from_storage(account, sts_config_to_storage(entry)) == entry
