"""One short handler per route; each turns HTTP into a call on the device and back."""

import json
import logging
from dataclasses import asdict
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from intercom_sip import BUILD_ID, USER_AGENT, __version__, errors
from intercom_sip.admin.logins import Admin, LoginResult
from intercom_sip.agent.phone import Refusal
from intercom_sip.api import http, page
from intercom_sip.api.calls import record_view, status_view
from intercom_sip.api.http import HttpResponse, Receive, Scope
from intercom_sip.calls import CallStatus
from intercom_sip.contract import callbody, jsonbody
from intercom_sip.contract.settings import Settings, to_view
from intercom_sip.contract.validation import Invalid, switch, validate
from intercom_sip.device import Device, Rules
from intercom_sip.events import Hub, device_sources
from intercom_sip.store import StoreError

log = logging.getLogger(__name__)

_MAX_QUERY_FIELDS = 16


class Call(NamedTuple):
    """One request, as far as a handler needs it (a tuple: one is made per request, and a
    frozen dataclass sets each field through `object.__setattr__`)."""

    scope: Scope
    receive: Receive
    client: str
    token: str | None


class Routes:
    def __init__(
        self,
        device: Device,
        admin: Admin,
        openapi: dict[str, Any] | http.HttpResponse,
        hub: Hub | None = None,
    ) -> None:
        """`openapi`: the document, or its answer made once (a building's monitors share
        it: 64 KB each)."""
        self._device, self._admin = device, admin
        # Without a hub of the server's (tests of other routes), one of our own: it is
        # primed on connect, but nothing watches for changes.
        self._hub = hub if hub is not None else Hub(device_sources(device), admin.authorized)
        self._page = page.page_files()
        self._openapi = (
            openapi if isinstance(openapi, http.HttpResponse) else http.json_response(200, openapi)
        )
        self._settings = http.response(200, b"")
        self._info = http.json_response(200, _info(device.serial_number))
        self._empty = http.json_response(200, {})
        self._enabled = {on: http.json_response(200, {"sip_enable": on}) for on in (False, True)}
        self._auto_answer = {
            on: http.json_response(200, {"is_enabled": on}) for on in (False, True)
        }

    async def info(self, call: Call) -> HttpResponse:
        return self._info

    async def openapi(self, call: Call) -> HttpResponse:
        return self._openapi

    async def login(self, call: Call) -> HttpResponse:
        username, password = _login_params(call.scope["query_string"])
        if username is None or password is None:
            return http.error(400, errors.LOGIN_PARAMS_MISSED)
        outcome = await self._admin.login(username, password, call.client)
        if outcome.result is LoginResult.THROTTLED:
            return http.error(429, errors.TOO_MANY_LOGINS)
        if outcome.result is LoginResult.WRONG:
            return http.error(400, errors.WRONG_LOGIN)
        return http.json_response(200, {"token": outcome.token, "account_type": "admin"})

    async def logout(self, call: Call) -> HttpResponse:
        self._admin.logout(call.token or "")
        self._hub.sweep()  # its event streams end now
        return http.json_response(200, {})

    async def get_settings(self, call: Call) -> HttpResponse:
        body = self._device.settings_json
        if self._settings.body is not body:  # the settings changed: a new answer, once
            self._settings = http.response(200, body)
        return self._settings

    async def post_settings(self, call: Call) -> HttpResponse:
        result = await self._change(call, validate)
        if isinstance(result, Settings):
            return http.response(200, json.dumps(to_view(result)).encode())
        return result

    async def sip_status(self, call: Call) -> HttpResponse:
        return http.json_response(200, self._device.status_view())

    async def get_sip_enable(self, call: Call) -> HttpResponse:
        return self._enabled[self._device.settings.enable]

    async def post_sip_enable(self, call: Call) -> HttpResponse:
        result = await self._change(call, switch)
        return self._enabled[result.enable] if isinstance(result, Settings) else result

    async def reregister(self, call: Call) -> HttpResponse:
        if not self._device.reregister():
            return http.error(409, errors.SIP_DISABLED)
        return self._empty

    # --- calls (contract §6) ---------------------------------------------------------------

    async def call_status(self, call: Call) -> HttpResponse:
        return _call_answer(self._device.phone.status())

    async def call_answer(self, call: Call) -> HttpResponse:
        return _call_answer(self._device.phone.answer())

    async def call_hangup(self, call: Call) -> HttpResponse:
        return _call_answer(self._device.phone.hangup())

    async def call_dial(self, call: Call) -> HttpResponse:
        body = await _json_body(call)
        if isinstance(body, HttpResponse):
            return body
        target = callbody.read_dial(body)
        if isinstance(target, Invalid):
            return http.error(400, target.message)
        return _call_answer(self._device.phone.dial(target))

    async def call_dtmf(self, call: Call) -> HttpResponse:
        body = await _json_body(call)
        if isinstance(body, HttpResponse):
            return body
        digits = callbody.read_dtmf(body)
        if isinstance(digits, Invalid):
            return http.error(400, digits.message)
        return _call_answer(self._device.phone.dtmf(digits))

    async def call_history(self, call: Call) -> HttpResponse:
        limit = callbody.read_limit(call.scope["query_string"])
        if limit is None:
            return http.error(400, errors.WRONG_LIMIT)
        try:
            records = await self._device.call_history(limit)
        except StoreError as exc:
            log.error("call log not read: %s", exc)
            return http.error(503, errors.CALL_LOG_FAILED)
        return http.json_response(200, {"calls": [record_view(record) for record in records]})

    async def get_auto_answer(self, call: Call) -> HttpResponse:
        return self._auto_answer[self._device.auto_answer]

    async def post_auto_answer(self, call: Call) -> HttpResponse:
        body = await _json_body(call)
        if isinstance(body, HttpResponse):
            return body
        enabled = callbody.read_auto_answer(body)
        if isinstance(enabled, Invalid):
            return http.error(400, enabled.message)
        try:
            await self._device.set_auto_answer(enabled)
        except StoreError as exc:
            log.error("auto-answer not stored: %s", exc)
            return http.error(503, errors.STORAGE_FAILED)
        return self._auto_answer[enabled]

    async def settings_history(self, call: Call) -> HttpResponse:
        limit = callbody.read_limit(call.scope["query_string"])
        if limit is None:
            return http.error(400, errors.WRONG_LIMIT)
        try:
            entries = await self._device.settings_history(limit)
        except StoreError as exc:
            log.error("settings history not read: %s", exc)
            return http.error(503, errors.HISTORY_FAILED)
        return http.json_response(200, {"changes": [asdict(entry) for entry in entries]})

    # --- live events (contract §8) and the page ---------------------------------------------

    async def events(self, call: Call) -> HttpResponse:
        stream = self._hub.open(call.token or "")
        if stream is None:
            return http.error(503, errors.TOO_MANY_STREAMS)
        return page.event_stream(stream)

    async def page_index(self, call: Call) -> HttpResponse:
        return self._page["page_index"]

    async def page_css(self, call: Call) -> HttpResponse:
        return self._page["page_css"]

    async def page_js(self, call: Call) -> HttpResponse:
        return self._page["page_js"]

    async def page_md5(self, call: Call) -> HttpResponse:
        return self._page["page_md5"]

    # The vendor's names (§6.3): the same handlers under their own operation ids.
    debug_call_start = call_dial
    debug_call_end = call_hangup
    system_call_status = call_status

    async def _change(self, call: Call, rules: Rules) -> Settings | HttpResponse:
        """A body read within the limit, checked by `rules`, made durable; or the error."""
        raw = await http.read_body(call.scope, call.receive)
        if raw is None:
            return http.TOO_LARGE
        try:
            result = await self._device.change(raw, f"admin@{call.client}", rules)
        except StoreError as exc:
            log.error("settings not stored: %s", exc)
            return http.error(503, errors.STORAGE_FAILED)
        if isinstance(result, Invalid):
            return http.error(400, result.message)
        return result


async def _json_body(call: Call) -> dict[str, Any] | HttpResponse:
    """The body as a JSON object, or the answer that refuses it (§3.2 steps 0 and 1)."""
    raw = await http.read_body(call.scope, call.receive)
    if raw is None:
        return http.TOO_LARGE
    body = jsonbody.parse_object(raw)
    return http.error(400, errors.WRONG_JSON_BODY) if body is None else body


def _call_answer(result: CallStatus | Refusal) -> HttpResponse:
    """200 with the call status after the action, or 409 with why not."""
    if isinstance(result, Refusal):
        return http.error(409, result.message)
    return http.json_response(200, status_view(result))


def _info(serial_number: str) -> dict[str, object]:
    """Contract §7.1: the keys the vendor's panels show and public clients require."""
    return {
        "device_name": "intercom-sip",
        "device_model": USER_AGENT,
        "device_type": "monitor",
        "firmware_version": __version__,
        "framework_version": __version__,
        "frontend_version": __version__,
        "api_version": "1.7.0",
        "device_serial_number": serial_number,
        "hybrid_enable": False,
        "hybrid_version": None,
        "commit": BUILD_ID,
    }


def _login_params(query: bytes) -> tuple[str | None, str | None]:
    try:
        params = parse_qs(
            query.decode("latin-1"), keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS
        )
    except ValueError:
        return None, None
    username, password = params.get("username"), params.get("password")
    return (username[0] if username else None, password[0] if password else None)
