"""The OpenAPI 3 document served at ``GET /v1/sys/openapi``, written by hand."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_ERRORS = {str(code): _ERROR for code in (400, 403, 404, 405, 413, 500, 502, 504)}
_TOKEN: list[dict[str, list[str]]] = [{"vaultToken": []}, {"bearer": []}]


def _op(
    summary: str,
    *,
    ok: str = "200",
    body: bool = False,
    auth: bool = True,
    list_param: bool = False,
) -> dict[str, Any]:
    """One operation: its summary, success status, request body and security."""
    ok_response = (
        {"description": "no content"}
        if ok == "204"
        else {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}},
        }
    )
    operation: dict[str, Any] = {"summary": summary, "responses": {ok: ok_response, **_ERRORS}}
    if body:
        operation["requestBody"] = {
            "content": {
                "application/json": {"schema": {"type": "object", "additionalProperties": True}}
            }
        }
    operation["security"] = _TOKEN if auth else []
    if list_param:
        operation["parameters"] = [
            {
                "name": "list",
                "in": "query",
                "required": True,
                "schema": {"type": "boolean", "enum": [True]},
            }
        ]
    return operation


def _write(summary: str, *, ok: str = "204", auth: bool = True) -> dict[str, Any]:
    """POST and PUT, which Vault treats alike."""
    return {
        "post": _op(summary, ok=ok, body=True, auth=auth),
        "put": _op(summary, ok=ok, body=True, auth=auth),
    }


def _path_param(
    name: str, description: str = "", schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A required path parameter (a string unless ``schema`` says otherwise)."""
    param: dict[str, Any] = {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string"},
    }
    if description:
        param["description"] = description
    return param


_MOUNT = _path_param("mount", "the auth method's mount path, e.g. aws")
_NAME = _path_param("name")
_ACCOUNT = _path_param("account_id", schema={"type": "string", "pattern": "^[0-9]{12}$"})
_PATH = _path_param("path")
_CERT_NAME = _path_param("cert_name")
_INSTANCE_ID = _path_param("instance_id", "an EC2 instance ID, e.g. i-0123456789abcdef0")
_ROLE_TAG = _path_param(
    "role_tag",
    "a role tag value (writes also take it base64-encoded). A tag that does not parse or "
    "verify is a 500, as in Vault",
)


def _deprecated(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with every operation marked deprecated (Vault's pre-1.7 names)."""
    return {
        path: {
            key: {**value, "deprecated": True} if key != "parameters" else value
            for key, value in item.items()
        }
        for path, item in paths.items()
    }


def _ec2_list_paths() -> dict[str, Any]:
    """The identity access list and the role tag deny list, with their tidies, under the
    current names and (deprecated) the legacy ones hvac still calls."""
    out: dict[str, Any] = {}
    for access, deny, legacy in (
        ("identity-accesslist", "roletag-denylist", False),
        ("identity-whitelist", "roletag-blacklist", True),
    ):
        paths: dict[str, Any] = {
            f"/v1/auth/{{mount}}/{access}": {
                "parameters": [_MOUNT],
                "get": _op("List instance IDs in the identity access list", list_param=True),
            },
            f"/v1/auth/{{mount}}/{access}/{{instance_id}}": {
                "parameters": [_MOUNT, _INSTANCE_ID],
                "get": _op("Read an instance's identity access list entry"),
                "delete": _op("Delete an instance's identity access list entry", ok="204"),
            },
            f"/v1/auth/{{mount}}/{deny}": {
                "parameters": [_MOUNT],
                "get": _op("List the deny-listed role tags", list_param=True),
            },
            f"/v1/auth/{{mount}}/{deny}/{{role_tag}}": {
                "parameters": [_MOUNT, _ROLE_TAG],
                "get": _op("Read a role tag's deny list entry"),
                **_write("Deny-list a role tag (verified first)"),
                "delete": _op("Remove a role tag from the deny list", ok="204"),
            },
        }
        for name, what in ((access, "identity access list"), (deny, "role tag deny list")):
            paths[f"/v1/auth/{{mount}}/config/tidy/{name}"] = {
                "parameters": [_MOUNT],
                "get": _op(f"Read the {what}'s periodic tidy settings"),
                **_write(f"Write the {what}'s periodic tidy settings"),
                "delete": _op(f"Delete the {what}'s periodic tidy settings", ok="204"),
            }
            paths[f"/v1/auth/{{mount}}/tidy/{name}"] = {
                "parameters": [_MOUNT],
                **_write(f"Remove expired {what} entries now (safety_buffer)"),
            }
        out.update(_deprecated(paths) if legacy else paths)
    return out


_METRICS: dict[str, Any] = {
    "summary": "Metrics in Prometheus's text format (root token, unless the listener's "
    "telemetry sets unauthenticated_metrics_access)",
    "parameters": [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["prometheus"]},
            "description": "prometheus (also chosen by an OpenMetrics Accept header); "
            "Vault's default JSON summary is not served",
        }
    ],
    "responses": {
        "200": {
            "description": "the exposition (OpenMetrics if the Accept header asks for it)",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
        },
        **_ERRORS,
    },
    "security": [*_TOKEN, {}],
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "aws_iam_backend",
        "version": "1",
        "description": "Vault's HTTP API for the AWS auth method (iam and ec2 login types). "
        "LIST operations are also served for the HTTP verb LIST. The EC2 endpoints are also "
        "served under Vault's pre-1.7 names (identity-whitelist, roletag-blacklist), "
        "marked deprecated here.",
    },
    "paths": {
        "/v1/sys/health": {
            "get": _op("Health and version", auth=False),
            "head": _op("Health, headers only", auth=False),
        },
        "/v1/sys/openapi": {"get": _op("This document", auth=False)},
        "/v1/sys/audit-hash": {
            "post": _op("HMAC of an input as the audit log shows it (root token)", body=True)
        },
        "/v1/sys/metrics": {"get": _METRICS},
        "/v1/sys/auth": {"get": _op("List auth mounts (root token)")},
        "/v1/sys/auth/{path}": {
            "parameters": [_PATH],
            **_write("Enable the aws auth method at path (root token)"),
            "delete": _op("Disable the mount, delete its data, revoke its tokens", ok="204"),
        },
        "/v1/auth/token/lookup-self": {
            "get": _op("Look up the calling token"),
            "post": _op("Look up the calling token"),
        },
        "/v1/auth/token/renew-self": {"post": _op("Renew the calling token", body=True)},
        "/v1/auth/token/revoke-self": {"post": _op("Revoke the calling token", ok="204")},
        "/v1/auth/token/lookup": {
            "post": _op("Look up a token (itself, or any with the root token)", body=True)
        },
        "/v1/auth/token/revoke-accessor": {
            "post": _op(
                "Revoke by accessor (its own, or any with the root token)", ok="204", body=True
            )
        },
        "/v1/auth/{mount}/login": {
            "parameters": [_MOUNT],
            **_write(
                "Login, iam (a signed sts:GetCallerIdentity request) or ec2 (an instance "
                "identity document signed by AWS: pkcs7, or identity and signature)",
                ok="200",
                auth=False,
            ),
        },
        "/v1/auth/{mount}/challenge": {
            "parameters": [_MOUNT],
            "get": _op("A server challenge nonce to sign into a login (ours)", auth=False),
            **_write("A server challenge nonce to sign into a login (ours)", ok="200", auth=False),
        },
        "/v1/auth/{mount}/config/client": {
            "parameters": [_MOUNT],
            "get": _op("Read the client configuration"),
            **_write("Write the client configuration"),
            "delete": _op("Delete the client configuration", ok="204"),
        },
        "/v1/auth/{mount}/config/identity": {
            "parameters": [_MOUNT],
            "get": _op("Read the identity configuration"),
            **_write("Write the identity configuration"),
        },
        "/v1/auth/{mount}/config/sts": {
            "parameters": [_MOUNT],
            "get": _op("List accounts with an STS role", list_param=True),
        },
        "/v1/auth/{mount}/config/sts/{account_id}": {
            "parameters": [_MOUNT, _ACCOUNT],
            "get": _op("Read an account's STS role"),
            **_write("Write an account's STS role"),
            "delete": _op("Delete an account's STS role", ok="204"),
        },
        "/v1/auth/{mount}/role": {
            "parameters": [_MOUNT],
            "get": _op("List roles", list_param=True),
        },
        "/v1/auth/{mount}/roles": {
            "parameters": [_MOUNT],
            "get": _op("List roles", list_param=True),
        },
        "/v1/auth/{mount}/role/{name}": {
            "parameters": [_MOUNT, _NAME],
            "get": _op("Read a role"),
            **_write("Create or update a role (200 only when there are warnings)"),
            "delete": _op("Delete a role", ok="204"),
        },
        "/v1/auth/{mount}/role/{name}/tag": {
            "parameters": [_MOUNT, _NAME],
            **_write("Create a role tag (ec2 roles with role_tag set)", ok="200"),
        },
        "/v1/auth/{mount}/config/certificates": {
            "parameters": [_MOUNT],
            "get": _op("List the configured AWS public certificates", list_param=True),
        },
        "/v1/auth/{mount}/config/certificate/{cert_name}": {
            "parameters": [_MOUNT, _CERT_NAME],
            "get": _op("Read an AWS public certificate"),
            **_write("Add or replace an AWS public certificate (pkcs7 or identity)"),
            "delete": _op("Delete an AWS public certificate", ok="204"),
        },
        **_ec2_list_paths(),
    },
    "components": {
        "securitySchemes": {
            "vaultToken": {"type": "apiKey", "in": "header", "name": "X-Vault-Token"},
            "bearer": {"type": "http", "scheme": "bearer"},
        },
        "schemas": {
            "Envelope": {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string"},
                    "lease_id": {"type": "string"},
                    "renewable": {"type": "boolean"},
                    "lease_duration": {"type": "integer"},
                    "data": {"type": "object", "nullable": True},
                    "wrap_info": {"type": "object", "nullable": True},
                    "warnings": {"type": "array", "items": {"type": "string"}, "nullable": True},
                    "auth": {"type": "object", "nullable": True},
                },
            },
        },
        "responses": {
            "Error": {
                "description": "Vault's error envelope",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "errors": {"type": "array", "items": {"type": "string"}}
                            },
                        }
                    }
                },
            },
        },
    },
}
