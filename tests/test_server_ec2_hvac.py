"""hvac's own EC2 calls, over HTTP, against the dev server (a subprocess on loopback,
SQLite storage) and moto's EC2, IAM and STS.

hvac 2.x calls the EC2 endpoints by Vault's pre-1.7 names (``identity-whitelist``,
``roletag-blacklist``, ``config/tidy/...-whitelist``/``-blacklist``); the current names
are called through hvac's adapter. Every call but the login needs the root token.

Expiry: the ``ec2short`` mount has a 2 s max lease TTL, so its access list and deny list
entries expire 2 s after they are written (the longest of the mount's, the role's and the
tag's max TTL), and the tidies can be seen removing them. The periodic tidy
(``AsyncVaultAPI.tidy``, what the server runs every minute) is run in-process over the
server's SQLite file.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests

from aws_iam_backend.io.storage import AsyncSQLiteStorage
from aws_iam_backend.server import AsyncVaultAPI
from tests.support.ec2 import (  # noqa: F401 (the fixtures)
    Ec2World,
    Instance,
    SigningCert,
    client_config,
    make_signing_cert,
    signer_fixture,
    unique,
    world_fixture,
)
from tests.support.moto_server import MotoServer
from tests.support.server import DevServer

MOUNT = "aws"
SHORT = "ec2short"  # max lease TTL 2 s: its entries expire at once
SHORT_TTL = 2


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ec2-hvac") / "s.db"


@pytest.fixture(scope="module")
def server(db: Path, moto: MotoServer, signer: SigningCert) -> Iterator[DevServer]:
    """The dev server, both mounts pointed at moto, the module's ``signer`` registered on
    both as certificate ``test-signer``."""
    dev = DevServer(f"sqlite:///{db}")
    try:
        admin = dev.client()
        admin.sys.enable_auth_method(
            "aws", path=SHORT, config={"default_lease_ttl": "2s", "max_lease_ttl": "2s"}
        )
        for mount in (MOUNT, SHORT):
            admin.auth.aws.configure(**client_config(moto), mount_point=mount)
            admin.auth.aws.create_certificate_configuration(
                "test-signer", signer.pem, mount_point=mount
            )
        yield dev
    finally:
        dev.stop()


def ec2_role(server: DevServer, world: Ec2World, *, mount: str = MOUNT, **fields: Any) -> str:
    """A new ``ec2`` role bound to the world's AMI."""
    name = unique("ec2-")
    server.client().auth.aws.create_role(
        name, auth_type="ec2", bound_ami_id=[world.image_id], mount_point=mount, **fields
    )
    return name


def login(
    server: DevServer,
    signer: SigningCert,
    instance: Instance,
    role: str,
    *,
    nonce: str | None = None,
    mount: str = MOUNT,
) -> tuple[hvac.Client, dict[str, Any]]:
    """hvac's ``ec2_login`` with the instance's PKCS#7 document; the client holds the token."""
    client = server.client(token=None)
    response = client.auth.aws.ec2_login(
        signer.pkcs7(instance.document()), nonce=nonce, role=role, mount_point=mount
    )
    assert client.token == response["auth"]["client_token"]
    return client, response["auth"]


def status(response: Any) -> int:
    """The status of what hvac returned: its ``requests.Response`` (204), or 200 for the
    JSON it decoded."""
    return response.status_code if isinstance(response, requests.Response) else 200


# ------------------------------------------------------------------ certificates


def test_certificate_create_read_list_delete(server: DevServer, signer: SigningCert) -> None:
    aws = server.client().auth.aws
    name = unique("cert-")
    assert status(aws.create_certificate_configuration(name, signer.pem)) == 204
    assert aws.read_certificate_configuration(name) == {
        "aws_public_cert": signer.pem,
        "type": "pkcs7",
    }
    assert name in aws.list_certificate_configurations()["keys"]
    # base64 of the PEM is taken too (Vault's precedence); hvac's document_type is no
    # field of Vault's: ignored with Vault's warning, the type stays
    encoded = base64.b64encode(signer.pem.encode()).decode()
    reply = aws.create_certificate_configuration(name, encoded, document_type="identity")
    assert reply["warnings"] == ["Endpoint ignored these unrecognized parameters: [document_type]"]
    assert aws.read_certificate_configuration(name)["aws_public_cert"] == signer.pem
    assert status(aws.delete_certificate_configuration(name)) == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_certificate_configuration(name)
    assert name not in aws.list_certificate_configurations()["keys"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="one PEM block only"):
        aws.create_certificate_configuration(name, "not a certificate")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid certificate name"):
        aws.create_certificate_configuration("bad name", signer.pem)


def test_certificate_type_identity_through_the_adapter(
    server: DevServer, signer: SigningCert
) -> None:
    client = server.client()
    name = unique("cert-")
    url = f"/v1/auth/{MOUNT}/config/certificate/{name}"
    client.adapter.post(url, json={"aws_public_cert": signer.pem, "type": "IDENTITY"})
    assert client.adapter.get(url)["data"]["type"] == "identity"
    with pytest.raises(hvac.exceptions.InvalidRequest, match='invalid certificate type "x509"'):
        client.adapter.post(url, json={"aws_public_cert": signer.pem, "type": "x509"})
    with pytest.raises(hvac.exceptions.InvalidRequest, match='invalid certificate type ""'):
        client.adapter.post(url, json={"aws_public_cert": signer.pem, "type": ""})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="missing aws_public_cert"):
        client.adapter.post(url, json={"type": "pkcs7"})
    assert client.adapter.get(url)["data"]["type"] == "identity"  # unchanged
    client.adapter.delete(url)


# ------------------------------------------------------------------ login


def test_ec2_login_returns_a_nonce_and_reauthenticates_with_it(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    role = ec2_role(server, world, policies=["web"])
    instance = world.run_instance()
    client, auth = login(server, signer, instance, role)
    nonce = auth["metadata"]["nonce"]
    assert nonce
    assert auth["policies"] == ["default", "web"]
    assert auth["metadata"]["role"] == role
    assert auth["metadata"]["auth_type"] == "ec2"
    me = client.auth.token.lookup_self()["data"]
    assert me["path"] == f"auth/{MOUNT}/login"
    assert me["meta"]["role"] == role
    # the access list remembers the instance, with the nonce
    aws = server.client().auth.aws
    entry = aws.read_identity_whitelist(instance.instance_id)
    assert entry["role"] == role
    assert entry["client_nonce"] == nonce
    assert entry["pending_time"] == instance.pending_time
    assert instance.instance_id in aws.list_identity_whitelist()["keys"]
    # without the nonce: refused; with it: a new token, and no nonce handed out again
    with pytest.raises(hvac.exceptions.InvalidRequest, match="client nonce mismatch"):
        login(server, signer, instance, role)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="client nonce mismatch"):
        login(server, signer, instance, role, nonce="not-the-nonce")
    again, reauth = login(server, signer, instance, role, nonce=nonce)
    assert again.token != client.token
    assert "nonce" not in reauth["metadata"]
    assert again.auth.token.lookup_self()["data"]["meta"]["role"] == role


def test_ec2_login_with_a_client_nonce(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    role = ec2_role(server, world)
    instance = world.run_instance()
    _, auth = login(server, signer, instance, role, nonce="my-own-nonce")
    assert "nonce" not in auth["metadata"]
    aws = server.client().auth.aws
    assert aws.read_identity_whitelist(instance.instance_id)["client_nonce"] == "my-own-nonce"
    login(server, signer, instance, role, nonce="my-own-nonce")


def test_ec2_login_refusals(server: DevServer, world: Ec2World, signer: SigningCert) -> None:
    role = ec2_role(server, world)
    instance = world.run_instance()
    iam_role = unique("iam-")
    server.client().auth.aws.create_role(
        iam_role, auth_type="iam", bound_iam_principal_arn=[world.role_arn]
    )
    with pytest.raises(hvac.exceptions.InvalidRequest, match="auth method ec2 not allowed"):
        login(server, signer, instance, iam_role)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="entry for role"):
        login(server, signer, instance, unique("nobody-"))
    stranger = make_signing_cert(key=signer.key)  # same key, unregistered certificate
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no certificate for signer"):
        login(server, stranger, instance, role)
    # nothing was recorded for the refused logins
    with pytest.raises(hvac.exceptions.InvalidPath):
        server.client().auth.aws.read_identity_whitelist(instance.instance_id)


# ------------------------------------------------------------------ access list


def test_access_list_read_list_delete(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    role = ec2_role(server, world)
    instance = world.run_instance()
    _, auth = login(server, signer, instance, role)
    aws = server.client().auth.aws
    entry = aws.read_identity_whitelist(instance.instance_id)
    assert set(entry) == {
        "role", "client_nonce", "creation_time", "disallow_reauthentication", "pending_time",
        "expiration_time", "last_updated_time",
    }  # fmt: skip
    assert entry["disallow_reauthentication"] is False
    client = server.client()
    current = f"/v1/auth/{MOUNT}/identity-accesslist"
    assert client.adapter.get(f"{current}/{instance.instance_id}")["data"] == entry
    assert instance.instance_id in client.adapter.list(current)["data"]["keys"]
    assert status(aws.delete_identity_whitelist_entries(instance.instance_id)) == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_identity_whitelist(instance.instance_id)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.adapter.get(f"{current}/{instance.instance_id}")
    # with the entry gone, the instance logs in again without its nonce (Vault's rule)
    _, fresh = login(server, signer, instance, role)
    assert fresh["metadata"]["nonce"] != auth["metadata"]["nonce"]


# ------------------------------------------------------------------ role tags


def test_role_tag_login_and_deny_list(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    aws = server.client().auth.aws
    role = ec2_role(server, world, role_tag="VaultRole", policies=["dev", "ops"])
    created = aws.create_role_tags(role, policies=["dev"], max_ttl="1h")["data"]
    assert created["tag_key"] == "VaultRole"
    tag = created["tag_value"]
    assert tag.startswith(f"v1:{tag.split(':')[1]}:r={role}:d=false:m=false:p=dev:t=3600:")
    instance = world.run_instance(tags={"VaultRole": tag})
    client, auth = login(server, signer, instance, role)
    assert auth["policies"] == ["default", "dev"]  # the tag's, not the role's
    assert auth["lease_duration"] <= 3600
    # deny-listed (as hvac sends it: in the path), the tag no longer logs in
    assert status(aws.place_role_tags_in_blacklist(tag)) == 204
    entry = aws.read_role_tag_blacklist(tag)
    assert set(entry) == {"creation_time", "expiration_time"}
    assert tag in aws.list_blacklist_tags()["keys"]
    nonce = auth["metadata"]["nonce"]
    with pytest.raises(hvac.exceptions.InternalServerError, match="role tag is deny listed"):
        login(server, signer, instance, role, nonce=nonce)
    # the current names show the same entry
    admin = server.client()
    assert tag in admin.adapter.list(f"/v1/auth/{MOUNT}/roletag-denylist")["data"]["keys"]
    assert admin.adapter.get(f"/v1/auth/{MOUNT}/roletag-denylist/{tag}")["data"] == entry
    assert status(aws.delete_blacklist_tags(tag)) == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_role_tag_blacklist(tag)
    login(server, signer, instance, role, nonce=nonce)
    # base64 is accepted on writes (Vault: to avoid encoding problems); reads take the tag
    encoded = base64.b64encode(tag.encode()).decode()
    aws.place_role_tags_in_blacklist(encoded)
    assert aws.read_role_tag_blacklist(tag)["creation_time"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_role_tag_blacklist(encoded)
    aws.delete_blacklist_tags(tag)
    assert client.token


def test_role_tag_refusals(server: DevServer, world: Ec2World) -> None:
    aws = server.client().auth.aws
    plain = ec2_role(server, world)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="tag creation is not enabled"):
        aws.create_role_tags(plain)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="entry not found for role"):
        aws.create_role_tags(unique("nobody-"))
    tagged = ec2_role(server, world, role_tag="VaultRole", policies=["dev"])
    reply = aws.create_role_tags(tagged, policies=["admin"], allow_instance_migration=True)
    assert any("not a subset" in w for w in reply["warnings"])
    assert any("does not allow instance migration" in w for w in reply["warnings"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot set both"):
        aws.create_role_tags(tagged, disallow_reauthentication=True, allow_instance_migration=True)
    # a tag that does not parse or verify: Vault's 500, with its text
    with pytest.raises(hvac.exceptions.InternalServerError, match="invalid tag"):
        aws.place_role_tags_in_blacklist("garbage")
    value = aws.create_role_tags(tagged)["data"]["tag_value"]
    forged = value[:-2] + ("E" if value[-2] == "A" else "A") + "="  # another HMAC
    with pytest.raises(hvac.exceptions.InternalServerError, match="signature verification"):
        aws.place_role_tags_in_blacklist(forged)
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.list_blacklist_tags(mount_point=SHORT)  # nothing was deny-listed there


def test_concurrent_admin_writes_all_succeed(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    """The same deny list entry, certificate and tidy config written at once from several
    clients: every write succeeds (no 409 for the losers of the race)."""
    aws = server.client().auth.aws
    role = ec2_role(server, world, role_tag="VaultRole")
    tag = aws.create_role_tags(role)["data"]["tag_value"]
    name = unique("cert-")
    calls: list[Callable[[Any], Any]] = [
        lambda a: a.place_role_tags_in_blacklist(tag),
        lambda a: a.create_certificate_configuration(name, signer.pem),
        lambda a: a.configure_identity_whitelist_tidy(safety_buffer="1h"),
    ]
    for call in calls:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, [server.client().auth.aws for _ in range(8)]))
        assert [status(r) for r in results] == [204] * 8
    assert aws.read_role_tag_blacklist(tag)
    aws.delete_blacklist_tags(tag)
    aws.delete_certificate_configuration(name)
    aws.delete_identity_whitelist_tidy()


# ------------------------------------------------------------------ tidy


TidyCalls = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]


def tidy_config_calls(aws: Any, which: str) -> TidyCalls:
    """hvac's configure, read and delete of one tidy config."""
    if which == "identity":
        return (
            aws.configure_identity_whitelist_tidy,
            aws.read_identity_whitelist_tidy,
            aws.delete_identity_whitelist_tidy,
        )
    return (
        aws.configure_role_tag_blacklist_tidy,
        aws.read_role_tag_blacklist_tidy,
        aws.delete_role_tag_blacklist_tidy,
    )


@pytest.mark.parametrize(
    ("which", "current", "default"),
    [("identity", "identity-accesslist", 259200), ("roletag", "roletag-denylist", 15552000)],
)
def test_tidy_config_write_read_delete(
    server: DevServer, which: str, current: str, default: int
) -> None:
    client = server.client()
    configure, read, delete = tidy_config_calls(client.auth.aws, which)
    with pytest.raises(hvac.exceptions.InvalidPath):
        read()
    assert status(configure(disable_periodic_tidy=True)) == 204
    assert read() == {"safety_buffer": default, "disable_periodic_tidy": True}
    configure(safety_buffer="1h")  # an update keeps what it does not name
    assert read() == {"safety_buffer": 3600, "disable_periodic_tidy": True}
    url = f"/v1/auth/{MOUNT}/config/tidy/{current}"
    assert client.adapter.get(url)["data"] == {"safety_buffer": 3600, "disable_periodic_tidy": True}
    client.adapter.post(url, json={"safety_buffer": 60, "disable_periodic_tidy": False})
    assert read() == {"safety_buffer": 60, "disable_periodic_tidy": False}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="safety_buffer"):
        configure(safety_buffer="soon")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="negative"):
        configure(safety_buffer="-1h")
    assert status(delete()) == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        read()
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.adapter.get(url)


def test_tidy_identity_access_list_removes_expired_entries(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    aws = server.client().auth.aws
    role = ec2_role(server, world, mount=SHORT)
    instance = world.run_instance()
    login(server, signer, instance, role, mount=SHORT)
    entry = aws.read_identity_whitelist(instance.instance_id, mount_point=SHORT)
    assert entry["role"] == role
    time.sleep(SHORT_TTL + 1)
    # expired, but within the safety buffer (72h by default): kept
    assert status(aws.tidy_identity_whitelist_entries(mount_point=SHORT)) == 204
    assert aws.read_identity_whitelist(instance.instance_id, mount_point=SHORT) == entry
    assert status(aws.tidy_identity_whitelist_entries(0, mount_point=SHORT)) == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_identity_whitelist(instance.instance_id, mount_point=SHORT)
    # the current name, and a bad safety buffer
    client = server.client()
    url = f"/v1/auth/{SHORT}/tidy/identity-accesslist"
    assert status(client.adapter.post(url, json={"safety_buffer": "0s"})) == 204
    with pytest.raises(hvac.exceptions.InvalidRequest, match="safety_buffer"):
        client.adapter.post(url, json={"safety_buffer": "later"})


def test_tidy_role_tag_deny_list_removes_expired_entries(
    server: DevServer, world: Ec2World
) -> None:
    aws = server.client().auth.aws
    role = ec2_role(server, world, mount=SHORT, role_tag="VaultRole")
    tag = aws.create_role_tags(role, mount_point=SHORT)["data"]["tag_value"]
    aws.place_role_tags_in_blacklist(tag, mount_point=SHORT)
    assert tag in aws.list_blacklist_tags(mount_point=SHORT)["keys"]
    time.sleep(SHORT_TTL + 1)
    assert status(aws.tidy_blacklist_tags(mount_point=SHORT)) == 204  # 72h buffer: kept
    assert aws.read_role_tag_blacklist(tag, mount_point=SHORT)
    url = f"/v1/auth/{SHORT}/tidy/roletag-denylist"
    assert status(server.client().adapter.post(url, json={"safety_buffer": 0})) == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_role_tag_blacklist(tag, mount_point=SHORT)


def periodic_tidy(db: Path) -> int:
    """``AsyncVaultAPI.tidy()`` (the server's periodic tidy) over the server's storage."""

    async def run() -> int:
        storage = AsyncSQLiteStorage(str(db))
        try:
            return await AsyncVaultAPI(storage=storage, root_token="unused").tidy()
        finally:
            await storage.aclose()

    return asyncio.run(run())


def test_periodic_tidy_removes_expired_entries_per_the_tidy_configs(
    server: DevServer, world: Ec2World, signer: SigningCert, db: Path
) -> None:
    aws = server.client().auth.aws
    role = ec2_role(server, world, mount=SHORT, role_tag="VaultRole")
    tag = aws.create_role_tags(role, mount_point=SHORT)["data"]["tag_value"]
    instance = world.run_instance(tags={"VaultRole": tag})
    login(server, signer, instance, role, mount=SHORT)
    aws.place_role_tags_in_blacklist(tag, mount_point=SHORT)
    for which in ("identity", "roletag"):
        configure, _read, _delete = tidy_config_calls(aws, which)
        configure(safety_buffer=0, disable_periodic_tidy=True, mount_point=SHORT)
    time.sleep(SHORT_TTL + 1)
    periodic_tidy(db)  # both disabled: both kept
    assert aws.read_identity_whitelist(instance.instance_id, mount_point=SHORT)
    assert aws.read_role_tag_blacklist(tag, mount_point=SHORT)
    aws.configure_identity_whitelist_tidy(disable_periodic_tidy=False, mount_point=SHORT)
    assert periodic_tidy(db) >= 1
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_identity_whitelist(instance.instance_id, mount_point=SHORT)
    assert aws.read_role_tag_blacklist(tag, mount_point=SHORT)  # still disabled
    aws.configure_role_tag_blacklist_tidy(disable_periodic_tidy=False, mount_point=SHORT)
    periodic_tidy(db)
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_role_tag_blacklist(tag, mount_point=SHORT)
    for which in ("identity", "roletag"):
        tidy_config_calls(aws, which)[2](mount_point=SHORT)


# ------------------------------------------------------------------ authentication


def _ec2_calls(aws: Any, tag: str, instance_id: str) -> list[tuple[str, Callable[[], Any]]]:
    """Every hvac EC2 call but the login, with arguments."""
    return [
        ("create certificate", lambda: aws.create_certificate_configuration("c", "x")),
        ("read certificate", lambda: aws.read_certificate_configuration("test-signer")),
        ("list certificates", lambda: aws.list_certificate_configurations()),
        ("delete certificate", lambda: aws.delete_certificate_configuration("test-signer")),
        ("create role tag", lambda: aws.create_role_tags("r")),
        ("deny-list tag", lambda: aws.place_role_tags_in_blacklist(tag)),
        ("read deny-listed tag", lambda: aws.read_role_tag_blacklist(tag)),
        ("list deny list", lambda: aws.list_blacklist_tags()),
        ("delete deny-listed tag", lambda: aws.delete_blacklist_tags(tag)),
        ("tidy deny list", lambda: aws.tidy_blacklist_tags()),
        ("configure deny list tidy", lambda: aws.configure_role_tag_blacklist_tidy(60)),
        ("read deny list tidy", lambda: aws.read_role_tag_blacklist_tidy()),
        ("delete deny list tidy", lambda: aws.delete_role_tag_blacklist_tidy()),
        ("read access list", lambda: aws.read_identity_whitelist(instance_id)),
        ("list access list", lambda: aws.list_identity_whitelist()),
        ("delete access list", lambda: aws.delete_identity_whitelist_entries(instance_id)),
        ("tidy access list", lambda: aws.tidy_identity_whitelist_entries()),
        ("configure access list tidy", lambda: aws.configure_identity_whitelist_tidy(60)),
        ("read access list tidy", lambda: aws.read_identity_whitelist_tidy()),
        ("delete access list tidy", lambda: aws.delete_identity_whitelist_tidy()),
    ]


def test_ec2_endpoints_refuse_no_token_and_login_tokens(
    server: DevServer, world: Ec2World, signer: SigningCert
) -> None:
    role = ec2_role(server, world, role_tag="VaultRole")
    tag = server.client().auth.aws.create_role_tags(role)["data"]["tag_value"]
    instance = world.run_instance(tags={"VaultRole": tag})
    logged_in, _ = login(server, signer, instance, role)
    not_refused = []
    for client in (server.client(token=None), server.client(token="not-a-token"), logged_in):
        for name, call in _ec2_calls(client.auth.aws, tag, instance.instance_id):
            try:
                call()
            except hvac.exceptions.Forbidden:
                continue
            except hvac.exceptions.VaultError as exc:
                not_refused.append(f"{name}: {type(exc).__name__}")
            else:
                not_refused.append(f"{name}: allowed")
    assert not_refused == []
    # nothing changed: the certificate, the access list entry, no deny list entry
    aws = server.client().auth.aws
    assert aws.read_certificate_configuration("test-signer")["type"] == "pkcs7"
    assert aws.read_identity_whitelist(instance.instance_id)["role"] == role
    with pytest.raises(hvac.exceptions.InvalidPath):
        aws.read_role_tag_blacklist(tag)
    # the login itself needs no token
    assert logged_in.auth.token.lookup_self()["data"]["meta"]["role"] == role
