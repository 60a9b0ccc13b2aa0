"""A parsed request body and the stored settings -> the new settings, or the
contract's error (§3.2). Pure: no I/O, no clock.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from intercom_sip import errors, jsonbody, syntax
from intercom_sip.fields import FACTORY, FIELDS, PYTHON_TYPE, Context
from intercom_sip.settings import PASSWORD_PLACEHOLDER, Settings, to_view

_ABSENT: Final = object()


@dataclass(frozen=True)
class Invalid:
    """A rejected body; `message` is the whole client-facing error."""

    message: str


# Rules that involve two fields run once the later of the two is known, and
# name the field whose value they reject.
CrossCheck = Callable[[Context], str | None]


def _sips_needs_tls(ctx: Context) -> str | None:
    parsed = syntax.parse_proxy(ctx.values["proxy"])
    if parsed and parsed[0] == "sips" and ctx.values["transport"] != "tls":
        return errors.invalid("transport", "must be tls when proxy starts with sips:")
    return None


def _placeholder_keeps_account(ctx: Context) -> str | None:
    if ctx.values["password"] != PASSWORD_PLACEHOLDER:
        return None
    sent = tuple(ctx.values[name] for name in ("proxy", "realm", "user", "user_id"))
    if sent == ctx.stored.identity():
        return None
    return errors.invalid(
        "password", "must be given again when proxy, realm, user or user_id change"
    )


CROSS_CHECKS: Final[Mapping[str, tuple[CrossCheck, ...]]] = {
    "transport": (_sips_needs_tls,),
    "user_id": (_placeholder_keeps_account,),
}


def validate(body: Mapping[str, Any], stored: Settings) -> Settings | Invalid:
    """Check every field in the contract's order; the first failure is the answer."""
    values: dict[str, Any] = {}
    ctx = Context(values, stored)
    for field, python_type, checks in _PLAN:
        value = _lookup(body, field.path)
        if value is _ABSENT:
            if field.required:
                return Invalid(errors.no_value(field.name))
            value = getattr(stored, field.attr or "")
        elif type(value) is not python_type:
            return Invalid(errors.wrong_type(field.name))
        elif field.rule is not None:
            reason = field.rule.reason(value, ctx)
            if reason is not None:
                return Invalid(errors.invalid(field.name, reason))
        values[field.name] = value
        for check in checks:
            problem = check(ctx)
            if problem is not None:
                return Invalid(problem)
    return _settings(values, stored)


def _lookup(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        value = value.get(part, _ABSENT)  # parents were checked to be objects first
        if value is _ABSENT:
            break
    return value


# The table, unrolled once: each field with its exact Python type and the checks
# that run after it. Types are strict: bool is no int, so `type(...) is` and
# never isinstance().
_PLAN: Final = tuple(
    (field, PYTHON_TYPE[field.kind], CROSS_CHECKS.get(field.name, ())) for field in FIELDS
)


def _settings(values: Mapping[str, Any], stored: Settings) -> Settings:
    attrs = {f.attr: values[f.name] for f in FIELDS if f.attr is not None}
    if attrs["password"] == PASSWORD_PLACEHOLDER:
        attrs["password"] = stored.password
    return Settings(**attrs)


def to_record(settings: Settings) -> str:
    """The stored form: the POST body that yields these settings, password included."""
    body = to_view(settings)
    body["password"] = settings.password
    del body["user_agent"]
    return json.dumps(body)


def from_record(text: str) -> Settings | None:
    """The stored form read back through the same rules; None when it breaks any."""
    body = jsonbody.parse_object(text.encode("utf-8", "surrogatepass"))
    if body is None:
        return None
    settings = validate(body, FACTORY)
    return settings if isinstance(settings, Settings) else None
