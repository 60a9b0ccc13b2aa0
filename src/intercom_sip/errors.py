"""Every client-facing message of the contract, in one place.

Tests compare these strings whole; change one only with the contract.
"""

import functools
from typing import Final

# The three builders below are cached: a field name and a rule make a small, fixed set
# of messages (a reason never holds what the client sent), and rejected bodies are hot.

WRONG_JSON_BODY: Final = "Wrong JSON body"
BODY_TOO_LARGE: Final = "Request body too large"
LOG_IN: Final = "Log In"
NOT_FOUND: Final = "Not found"
METHOD_NOT_ALLOWED: Final = "Method not allowed"
MISDIRECTED: Final = "Misdirected request"
LOGIN_PARAMS_MISSED: Final = "Required parameters missed"
WRONG_LOGIN: Final = "Wrong login or password"
TOO_MANY_LOGINS: Final = "Too many login attempts"
NO_CALL: Final = "No call"
BUSY: Final = "Busy"
NOT_REGISTERED: Final = "SIP is not registered"
WRONG_NUMBER_FORMAT: Final = "Wrong number format"
WRONG_LIMIT: Final = "Wrong limit"
CALL_LOG_FAILED: Final = "Call log could not be read"
STORAGE_FAILED: Final = "Settings could not be stored"
INTERNAL: Final = "Internal error"
SIP_DISABLED: Final = "SIP is disabled"
TOO_MANY_STREAMS: Final = "Too many event streams"
HISTORY_FAILED: Final = "Settings history could not be read"
# Answered by the HTTP server itself, for any path.
BAD_REQUEST: Final = "Bad request"
HEAD_TOO_LARGE: Final = "Request header fields too large"
NOT_IMPLEMENTED: Final = "Transfer coding not implemented"
VERSION_NOT_SUPPORTED: Final = "HTTP version not supported"


@functools.cache
def no_value(field: str) -> str:
    return f"Wrong JSON body: no value for `{field}`"


@functools.cache
def wrong_type(field: str) -> str:
    return f"Wrong JSON body: value `{field}` was of the wrong type"


@functools.lru_cache(maxsize=256)
def invalid(field: str, reason: str) -> str:
    return f"Wrong JSON body: value `{field}` is invalid: {reason}"
