"""A parsed request body and the stored settings -> the new settings, or the
contract's error (§3.2). Pure: no I/O, no clock.
"""

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from intercom_sip import errors
from intercom_sip.contract import jsonbody
from intercom_sip.contract.fields import (
    FACTORY,
    FIELDS,
    PYTHON_TYPE,
    SWITCH,
    Context,
    Field,
    Kind,
)
from intercom_sip.contract.settings import PASSWORD_PLACEHOLDER, Settings, to_view
from intercom_sip.sip import syntax

_ABSENT: Final = object()
_BODY: Final = ""  # the body's own place among the values by field name (no field's name)


@dataclass(frozen=True)
class Invalid:
    """A rejected body; `message` is the whole client-facing error. A value that breaks
    a rule also names the field and the rule (`reason`), for the messages built on it."""

    message: str
    field: str = dataclasses.field(default="", compare=False)
    reason: str = dataclasses.field(default="", compare=False)

    @classmethod
    def of(cls, field: str, reason: str) -> "Invalid":
        return _broken_rule(field, reason)


@functools.lru_cache(maxsize=256)  # a reason never holds the value: a small, fixed set
def _broken_rule(field: str, reason: str) -> Invalid:
    """Made once per field and reason: a rejected body is answered with no new value."""
    return Invalid(errors.invalid(field, reason), field, reason)


# Rules that involve two fields run once the later of the two is known, and
# name the field whose value they reject.
CrossCheck = Callable[[Context], Invalid | None]


def _sips_needs_tls(ctx: Context) -> Invalid | None:
    parsed = syntax.parse_proxy(ctx.values["proxy"])
    if parsed and parsed[0] == "sips" and ctx.values["transport"] != "tls":
        return Invalid.of("transport", "must be tls when proxy starts with sips:")
    return None


def _placeholder_keeps_account(ctx: Context) -> Invalid | None:
    if ctx.values["password"] != PASSWORD_PLACEHOLDER:
        return None
    sent = tuple(ctx.values[name] for name in ("proxy", "realm", "user", "user_id"))
    if sent == ctx.stored.identity():
        return None
    return Invalid.of("password", "must be given again when proxy, realm, user or user_id change")


CROSS_CHECKS: Final[Mapping[str, tuple[CrossCheck, ...]]] = {
    "transport": (_sips_needs_tls,),
    "user_id": (_placeholder_keeps_account,),
}


def validate(body: Mapping[str, Any], stored: Settings) -> Settings | Invalid:
    """Check every field in the contract's order; the first failure is the answer."""
    values: dict[str, Any] = {_BODY: body}  # the body too: every value is `values[parent][key]`
    ctx = Context(values, stored)
    for name, parent, key, python_type, rule, missing, wrong_type, field, checks in _STEPS:
        # Its parent is an object already checked (`stun` before `stun.ip`).
        value = values[parent].get(key, _ABSENT)
        if type(value) is not python_type:  # one test for the common case, present and typed
            if value is not _ABSENT:
                return wrong_type
            if missing is not None:
                return missing
            value = field.absent(ctx) if field.absent else getattr(stored, field.attr or "")
        elif rule is not None:
            reason = rule(value, ctx)
            if reason is not None:
                return _broken_rule(name, reason)
        values[name] = value
        if checks:
            for check in checks:
                problem = check(ctx)
                if problem is not None:
                    return problem
    return _settings(values, stored)


def switch(body: Mapping[str, Any], stored: Settings) -> Settings | Invalid:
    """`{"sip_enable": bool}` (contract §7.2): the stored settings with `enable` alone
    changed, through the same checks as a settings body that changes only `enable`."""
    enable = _value(body, SWITCH, bool, Context({}, stored))
    if isinstance(enable, Invalid):
        return enable
    new = validate(record_body(dataclasses.replace(stored, enable=enable)), stored)
    if isinstance(new, Invalid):  # an incomplete account cannot be turned on
        return Invalid.of(SWITCH.name, f"{new.field} {new.reason}")
    return new


def value_of(body: Mapping[str, Any], field: Field) -> Any:
    """One field of another route's body, read as a settings field is (§3.2's messages):
    its value, or the Invalid that rejects it. Its rule may not look at other fields."""
    return _value(body, field, PYTHON_TYPE[field.kind], Context({}, FACTORY))


def _value(body: Mapping[str, Any], field: Field, python_type: type, ctx: Context) -> Any:
    """The field's value, or the Invalid that rejects it."""
    value = _lookup(body, field.path)
    if value is _ABSENT:
        if field.required:
            return Invalid(errors.no_value(field.name))
        return field.absent(ctx) if field.absent else getattr(ctx.stored, field.attr or "")
    if type(value) is not python_type:
        return Invalid(errors.wrong_type(field.name))
    reason = None if field.rule is None else field.rule.reason(value, ctx)
    return value if reason is None else Invalid.of(field.name, reason)


def _lookup(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        value = value.get(part, _ABSENT)  # parents were checked to be objects first
        if value is _ABSENT:
            break
    return value


class _Step(NamedTuple):
    """One row of the table, unrolled for `validate`: where its value sits, its exact
    Python type, its rule, the answers that reject it (made once), and the checks that
    run after it. Types are strict: bool is no int, so `type(...) is` and never
    isinstance()."""

    name: str
    parent: str  # the object field it sits in; _BODY: the body itself
    key: str
    python_type: type
    rule: Callable[[Any, Context], str | None] | None
    missing: Invalid | None  # the answer when it is absent; None: optional
    wrong_type: Invalid
    field: Field
    checks: tuple[CrossCheck, ...]


def _step(field: Field) -> _Step:
    *parents, key = field.path
    if parents and _PARENTS.get(".".join(parents)) is not True:
        raise ValueError(f"{field.name}: its parent must be a required object before it")
    _PARENTS[field.name] = field.kind is Kind.OBJECT and field.required
    return _Step(
        field.name,
        ".".join(parents) or _BODY,
        key,
        PYTHON_TYPE[field.kind],
        None if field.rule is None else field.rule.reason,
        Invalid(errors.no_value(field.name)) if field.required else None,
        Invalid(errors.wrong_type(field.name)),
        field,
        CROSS_CHECKS.get(field.name, ()),
    )


_PARENTS: dict[str, bool] = {}  # the fields seen so far: may one hold others?
_STEPS: Final = tuple(_step(field) for field in FIELDS)
# The Settings attributes, each with the JSON name of the field that fills it.
_ATTRS: Final = tuple((f.attr, f.name) for f in FIELDS if f.attr is not None)


def _settings(values: Mapping[str, Any], stored: Settings) -> Settings:
    attrs = {attr: values[name] for attr, name in _ATTRS}
    if attrs["password"] == PASSWORD_PLACEHOLDER:
        attrs["password"] = stored.password
    return Settings(**attrs)


def record_body(settings: Settings) -> dict[str, Any]:
    """The POST body that yields these settings, password included."""
    body = to_view(settings)
    body["password"] = settings.password
    del body["user_agent"]
    return body


def to_record(settings: Settings) -> str:
    """The stored form: the POST body that yields these settings, password included."""
    return json.dumps(record_body(settings))


def from_record(text: str) -> Settings | None:
    """The stored form read back through the same rules; None when it breaks any."""
    body = jsonbody.parse_object(text.encode("utf-8", "surrogatepass"))
    if body is None:
        return None
    settings = validate(body, FACTORY)
    return settings if isinstance(settings, Settings) else None
