"""The OpenAPI 3.1 document, built from the endpoint table and the field table.

It states every answer the service gives: each route's own statuses, and those any
request can get from the server (a malformed request, a head too large, a foreign
`Host`, a bug). Unknown paths and methods cannot be operations; their answers are
the document's `NotFound` and `MethodNotAllowed` responses.
"""

import re
from collections.abc import Iterable
from typing import Any, Final

from intercom_sip import USER_AGENT, __version__, calls, errors
from intercom_sip.api.endpoints import API_PREFIXES, ENDPOINTS, Endpoint
from intercom_sip.contract.callbody import AUTO_ANSWER, DIGITS, LIMIT_DEFAULT, NUMBER
from intercom_sip.contract.dialing import NUMBER_PATTERN
from intercom_sip.contract.fields import (
    FIELDS,
    SIPS_PROXY_PATTERN,
    SWITCH,
    EmptyWhenDisabled,
    Field,
)
from intercom_sip.contract.settings import PASSWORD_PLACEHOLDER
from intercom_sip.store import HISTORY_KEEP

# What any request may get from the server itself, whatever its route.
SERVER_STATUSES: Final = (400, 421, 431, 500)

# Every error answer but 400 and 409 (whose texts depend on the route), and the 503s of
# _OWN_TEXTS: status -> name, text.
_ERRORS: Final = {
    401: ("LogIn", errors.LOG_IN),
    404: ("NotFound", errors.NOT_FOUND),
    405: ("MethodNotAllowed", errors.METHOD_NOT_ALLOWED),
    413: ("TooLarge", errors.BODY_TOO_LARGE),
    421: ("Misdirected", errors.MISDIRECTED),
    429: ("TooManyLogins", errors.TOO_MANY_LOGINS),
    431: ("HeadersTooLarge", errors.HEAD_TOO_LARGE),
    500: ("Internal", errors.INTERNAL),
    503: ("StorageFailed", errors.STORAGE_FAILED),
}
_HEADERS: Final = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"const": "Bearer"}}},
    405: {
        "Allow": {
            "required": True,
            "description": "The path's methods",
            "schema": {"type": "string", "pattern": "^[A-Z]+(, ?[A-Z]+)*$"},
        }
    },
}
_DESCRIPTIONS: Final = {
    400: "Bad request",
    409: "Not now",
    413: "Body over 64 KiB",
    421: "Host names no address of this service",
    431: "Request head over 16 KiB",
    500: "A bug of the service",
    503: "The store failed; nothing changed",
}


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        for full in endpoint.full_paths():
            paths.setdefault(full, {})[endpoint.method.lower()] = _operation(endpoint, full)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "intercom-sip",
            "version": __version__,
            "summary": USER_AGENT,
            "description": "Every answer is JSON but those of the web page's files and the"
            " stream of live events. An unknown path answers the NotFound response, a known"
            " path with another method MethodNotAllowed (after 401 on a protected path).",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "responses": {
                "BadRequest": _error(400, errors.BAD_REQUEST),
                **{name: _error(status, text) for status, (name, text) in _ERRORS.items()},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(endpoint: Endpoint, full: str) -> dict[str, Any]:
    statuses = sorted({*endpoint.statuses, *SERVER_STATUSES})
    operation: dict[str, Any] = {
        "operationId": _operation_id(endpoint, full),
        "summary": endpoint.summary,
        "responses": {str(code): _response(endpoint, code) for code in statuses},
    }
    if endpoint.protected:
        operation["security"] = [{"bearer": []}]
    if endpoint.handler in _PARAMETERS:
        operation["parameters"] = _PARAMETERS[endpoint.handler]
    if endpoint.body:
        operation["requestBody"] = {"required": True, "content": _json_of(endpoint.body)}
    return operation


def _operation_id(endpoint: Endpoint, full: str) -> str:
    """Unique across both prefixes: the /api/v0 twin is named by its prefix."""
    legacy = endpoint.versioned and not full.startswith(API_PREFIXES[0])
    return endpoint.handler + ("_v0" if legacy else "")


def _response(endpoint: Endpoint, code: int) -> dict[str, Any]:
    if code == 200 and endpoint.media != "application/json":
        schema = {"type": "string", "description": _TEXTS.get(endpoint.answer, endpoint.summary)}
        return {"description": "OK", "content": {endpoint.media: {"schema": schema}}}
    if code == 200:
        return {"description": "OK", "content": _json_of(endpoint.answer)}
    if code == 400:
        texts = _BAD_REQUESTS.get(endpoint.handler, [])
        return {
            "description": _DESCRIPTIONS[400],
            "content": _json(
                {**_error_object({"anyOf": [{"const": errors.BAD_REQUEST}, *texts]})}
            ),
        }
    own = _OWN_TEXTS.get(code, {}).get(endpoint.handler)
    if own is not None:
        said = _OWN_DESCRIPTIONS.get(endpoint.handler, _DESCRIPTIONS[code])
        return {"description": said, "content": _json(_error_object(own))}
    return {"$ref": f"#/components/responses/{_ERRORS[code][0]}"}


def _error(status: int, text: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, text),
        "content": _json(_error_object({"const": text})),
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _error_object(message: dict[str, Any]) -> dict[str, Any]:
    return _object({"error": message})


def _body_errors(fields: Iterable[Field], invalid: Iterable[str]) -> list[dict[str, Any]]:
    """The 400 texts of a JSON body (contract §3.2)."""
    fields = tuple(fields)
    names = "|".join(re.escape(name) for name in invalid)
    texts: list[dict[str, Any]] = [
        {"const": errors.WRONG_JSON_BODY},
        {"enum": [errors.no_value(f.name) for f in fields if f.required]},
        {"enum": [errors.wrong_type(f.name) for f in fields]},
    ]
    if names:
        texts.append({"pattern": f"^Wrong JSON body: value `(?:{names})` is invalid: .+$"})
    return texts


_DIAL_ERRORS: Final = [*_body_errors((NUMBER,), ()), {"const": errors.WRONG_NUMBER_FORMAT}]
_BAD_REQUESTS: Final = {
    "login": [{"enum": [errors.LOGIN_PARAMS_MISSED, errors.WRONG_LOGIN]}],
    "post_settings": _body_errors(FIELDS, [f.name for f in FIELDS if f.rule is not None]),
    "post_sip_enable": _body_errors((SWITCH,), [SWITCH.name]),
    "call_dial": _DIAL_ERRORS,
    "debug_call_start": _DIAL_ERRORS,
    "call_dtmf": _body_errors((DIGITS,), [DIGITS.name]),
    "call_history": [{"const": errors.WRONG_LIMIT}],
    "settings_history": [{"const": errors.WRONG_LIMIT}],
    "post_auto_answer": _body_errors((AUTO_ANSWER,), ()),
}

# The texts of other statuses that depend on the route: status -> handler -> schema.
_NO_CALL: Final = {"const": errors.NO_CALL}
_DIAL_CONFLICTS: Final = {"enum": [errors.NOT_REGISTERED, errors.BUSY]}
_OWN_TEXTS: Final[dict[int, dict[str, dict[str, Any]]]] = {
    409: {
        "reregister": {"const": errors.SIP_DISABLED},
        "call_answer": _NO_CALL,
        "call_hangup": _NO_CALL,
        "debug_call_end": _NO_CALL,
        "call_dtmf": _NO_CALL,
        "call_dial": _DIAL_CONFLICTS,
        "debug_call_start": _DIAL_CONFLICTS,
    },
    503: {
        "call_history": {"const": errors.CALL_LOG_FAILED},
        "settings_history": {"const": errors.HISTORY_FAILED},
        "events": {"const": errors.TOO_MANY_STREAMS},
    },
}
_OWN_DESCRIPTIONS: Final = {"events": "32 event streams are open already"}

# What a text answer holds.
_TEXTS: Final = {
    "Events": "Server-sent events (text/event-stream). On connect, the current state of"
    " each kind; then each change: `event: registration` (data: a SipStatus), `event: call`"
    " (a Call), `event: settings` (a SipSettingsView); one JSON object per `data:` line. A"
    " comment line at least every 15 s. The stream ends when its token does. At most 32"
    " streams at once.",
}


def _limit(what: str) -> list[dict[str, Any]]:
    schema = {"type": "integer", "minimum": 1, "maximum": calls.LOG_KEEP, "default": LIMIT_DEFAULT}
    return [_query("limit", f"How many {what}, newest first", schema, required=False)]


def _query(
    name: str, text: str, schema: dict[str, Any] | None = None, required: bool = True
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": text,
        "schema": schema or {"type": "string"},
    }


_PARAMETERS: Final = {
    "login": [
        _query("username", "admin"),
        _query("password", "MD5 hex of the password, either case"),
    ],
    "call_history": _limit("calls"),
    "settings_history": _limit("changes"),
}


def _json_of(schema: str) -> dict[str, Any]:
    return _json({"$ref": f"#/components/schemas/{schema}"})


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


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
        # the port may be 0 only while there is no STUN server
        "if": {"properties": {"ip": {"not": {"const": ""}}}, "required": ["ip"]},
        "then": {"properties": {"port": {"minimum": 1}}},
    }
    required = [f.name for f in top if f.required]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if view:
        properties["password"] = {
            "enum": ["", PASSWORD_PLACEHOLDER],
            "description": f"{PASSWORD_PLACEHOLDER} when a password is stored",
        }
        properties["stun"]["additionalProperties"] = False
        properties["user_agent"] = {"const": USER_AGENT, "readOnly": True}
        required = [*properties]
        schema["additionalProperties"] = False
    schema["required"] = required
    schema["allOf"] = [_filled_when_enabled(), _sips_needs_tls()]
    return schema


def _filled_when_enabled() -> dict[str, Any]:
    """`""` is valid for these only while `enable` is false (contract §3.1)."""
    filled = [f.name for f in FIELDS if isinstance(f.rule, EmptyWhenDisabled)]
    return {
        "if": {"properties": {"enable": {"const": True}}, "required": ["enable"]},
        "then": {"properties": {name: {"minLength": 1} for name in filled}},
    }


def _sips_needs_tls() -> dict[str, Any]:
    """A `sips:` proxy needs transport tls. Left out, the stored transport counts; the
    document, knowing nothing stored, asks for it."""
    return {
        "if": {
            "properties": {"proxy": {"type": "string", "pattern": SIPS_PROXY_PATTERN}},
            "required": ["proxy"],
        },
        "then": {"properties": {"transport": {"const": "tls"}}, "required": ["transport"]},
    }


def _schemas() -> dict[str, Any]:
    nullable_int = {"type": ["integer", "null"]}
    nullable_str = {"type": ["string", "null"]}
    version = {"const": __version__}
    switch = {SWITCH.name: _field_schema(SWITCH)}
    return {
        "SipSettings": _settings_schema(view=False),
        "SipSettingsView": _settings_schema(view=True),
        "SipEnable": {"type": "object", "properties": switch, "required": [SWITCH.name]},
        "SipEnableView": _object(switch),
        "Empty": {"type": "object", "maxProperties": 0},
        "Document": {"type": "object", "required": ["openapi", "info", "paths"]},
        "Login": _object(
            {
                "token": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
                "account_type": {"const": "admin"},
            }
        ),
        "Info": _object(
            {
                "device_name": {"const": "intercom-sip"},
                "device_model": {"const": USER_AGENT},
                "device_type": {"const": "monitor"},
                "firmware_version": version,
                "framework_version": version,
                "frontend_version": version,
                "api_version": {"const": "1.7.0"},
                "device_serial_number": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Made once, stored, never changed",
                },
                "hybrid_enable": {"const": False},
                "hybrid_version": {"type": "null"},
                "commit": {"type": "string", "description": "The build"},
            }
        ),
        **_call_schemas(),
        "SettingsHistory": _object(
            {
                "changes": {
                    "type": "array",
                    "maxItems": HISTORY_KEEP,
                    "items": _object(
                        {
                            "at": {"type": "number", "description": "Unix time"},
                            "actor": {"type": "string", "description": "admin@<address>"},
                            "settings": {"$ref": "#/components/schemas/SipSettingsView"},
                            "password_changed": {"type": "boolean"},
                        }
                    ),
                }
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
                "transport": {"enum": ["udp", "tcp", "tls", None]},
            }
        ),
    }


def _call_schemas() -> dict[str, Any]:
    """Contract §6: the call status, the call log, and the bodies of the call routes."""
    auto_answer = {AUTO_ANSWER.name: _field_schema(AUTO_ANSWER)}
    return {
        "Call": {"oneOf": [_idle_call(), _object(_call_keys(live=True))]},
        "CallLog": _object(
            {
                "calls": {
                    "type": "array",
                    "maxItems": calls.LOG_KEEP,
                    "items": _object(_call_keys(live=False)),
                }
            }
        ),
        "RtpFigures": _object(
            {
                "sent": {"type": "integer", "minimum": 0},
                "received": {"type": "integer", "minimum": 0},
                "lost": {"type": "integer", "minimum": 0},
                "jitter_ms": {"type": "number", "minimum": 0},
            }
        ),
        "Dial": {
            "type": "object",
            "properties": {
                NUMBER.name: {
                    "type": "string",
                    "description": NUMBER.doc,
                    "pattern": NUMBER_PATTERN,
                }
            },
            "required": [NUMBER.name],
        },
        "Dtmf": {
            "type": "object",
            "properties": {DIGITS.name: _field_schema(DIGITS)},
            "required": [DIGITS.name],
        },
        "AutoAnswer": {"type": "object", "properties": auto_answer, "required": [*auto_answer]},
        "AutoAnswerView": _object(auto_answer),
    }


def _idle_call() -> dict[str, Any]:
    nulls = {name: {"type": "null"} for name in _call_keys(live=True)}
    return _object({**nulls, "state": {"const": "idle"}})


def _call_keys(live: bool) -> dict[str, Any]:
    """The keys of a call: in the status (`live`, §6.1) or in the log (§6.8)."""
    time = {"type": "integer", "description": "Unix time"}
    maybe_time = {"type": ["integer", "null"], "description": "Unix time"}
    keys: dict[str, Any] = {
        "id": {"type": "string", "minLength": 1},
        "direction": {"enum": list(calls.DIRECTIONS)},
        "remote": {"type": "string", "maxLength": calls.MAX_REMOTE},
        "started": time,
        "answered": maybe_time,
        "duration": {"type": ["integer", "null"], "minimum": 0, "description": "s"},
        "codec": {"enum": ["PCMU", "PCMA", None]},
        "srtp": {"type": ["boolean", "null"]},
        "dtmf_received": {"type": ["string", "null"], "maxLength": calls.MAX_DTMF_RECEIVED},
        "rtp": {"anyOf": [{"$ref": "#/components/schemas/RtpFigures"}, {"type": "null"}]},
    }
    if live:
        return {
            "state": {"enum": [s for s in calls.STATES if s != "idle"]},
            **keys,
            "ends_at": maybe_time,
        }
    return {
        **keys,
        "ended": time,
        "end_reason": {"enum": list(calls.END_REASONS)},
        "code": {"type": ["integer", "null"], "minimum": 100, "maximum": 699},
        "reason": {"type": ["string", "null"], "maxLength": calls.MAX_REASON},
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
