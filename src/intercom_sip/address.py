"""A socket address, host and port, as asyncio's sockets give and take it: the one
definition that the SIP transports, the SIP core and the media streams share."""

from typing import TypeAlias

Address: TypeAlias = tuple[str, int]
