"""The OpenAPI 3.1 document, built from the endpoint table and the field table."""

from typing import Any, Final

from intercom_sip import USER_AGENT, __version__, errors
from intercom_sip.api.endpoints import ENDPOINTS, Endpoint
from intercom_sip.fields import FIELDS, Field

_ERROR_TEXT: Final = {
    400: "Wrong JSON body, a missing or wrong field, or a wrong login",
    401: errors.LOG_IN,
    413: errors.BODY_TOO_LARGE,
    421: errors.MISDIRECTED,
    429: errors.TOO_MANY_LOGINS,
    503: errors.STORAGE_FAILED,
}
_REQUEST_BODY: Final = {"POST /v1/device/sip/settings": "SipSettings"}
_ANSWER: Final = {
    "login": "Login",
    "logout": "Empty",
    "info": "Info",
    "get_settings": "SipSettingsView",
    "post_settings": "SipSettingsView",
    "sip_status": "SipStatus",
    "openapi": "Document",
}


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        for full in endpoint.full_paths():
            paths.setdefault(full, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "intercom-sip", "version": __version__, "summary": USER_AGENT},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.handler,
        "summary": endpoint.summary,
        "responses": {str(code): _response(endpoint, code) for code in (*endpoint.statuses, 421)},
    }
    if endpoint.protected:
        operation["security"] = [{"bearer": []}]
    if endpoint.handler == "login":
        operation["parameters"] = [
            _query("username", "admin"),
            _query("password", "MD5 hex of the password, either case"),
        ]
    body = _REQUEST_BODY.get(f"{endpoint.method} {endpoint.path}")
    if body:
        operation["requestBody"] = {"required": True, "content": _json_of(body)}
    return operation


def _response(endpoint: Endpoint, code: int) -> dict[str, Any]:
    if code == 200:
        return {"description": "OK", "content": _json_of(_ANSWER[endpoint.handler])}
    return {"description": _ERROR_TEXT[code], "content": _json_of("Error")}


def _query(name: str, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": text,
        "schema": {"type": "string"},
    }


def _json_of(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _field_schema(field: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": field.kind.value, "description": field.doc}
    if field.rule is not None:
        schema.update(field.rule.schema())
    return schema


def _settings_schema(view: bool) -> dict[str, Any]:
    top = [f for f in FIELDS if "." not in f.name]
    properties = {f.name: _field_schema(f) for f in top}
    stun = [f for f in FIELDS if f.name.startswith("stun.")]
    properties["stun"] = {
        "type": "object",
        "description": "STUN server",
        "properties": {f.name.split(".")[1]: _field_schema(f) for f in stun},
        "required": [f.name.split(".")[1] for f in stun],
    }
    required = [f.name for f in top if f.required]
    if view:
        properties["user_agent"] = {"type": "string", "readOnly": True}
        required = [*properties]
    return {"type": "object", "properties": properties, "required": required}


def _schemas() -> dict[str, Any]:
    nullable_int = {"type": ["integer", "null"]}
    nullable_str = {"type": ["string", "null"]}
    return {
        "SipSettings": _settings_schema(view=False),
        "SipSettingsView": _settings_schema(view=True),
        "Error": _object({"error": {"type": "string"}}),
        "Empty": {"type": "object", "maxProperties": 0},
        "Document": {"type": "object"},
        "Login": _object(
            {
                "token": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
                "account_type": {"const": "admin"},
            }
        ),
        "Info": _object(
            {
                key: {"type": "string"}
                for key in ("device_name", "device_model", "firmware_version", "api_version")
            }
        ),
        "SipStatus": _object(
            {
                "sip_status": {"enum": ["OK", "ERROR", "OFFLINE"]},
                "register_last_attempt": nullable_int,
                "state": {
                    "enum": ["disabled", "registering", "registered", "unregistering", "failed"]
                },
                "code": nullable_int,
                "reason": nullable_str,
                "expires": nullable_int,
                "next_refresh": nullable_int,
                "contact": nullable_str,
                "public_address": nullable_str,
                "transport": nullable_str,
            }
        ),
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}
