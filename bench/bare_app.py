"""The baseline: an ASGI app that answers a fixed JSON body, under our own HTTP server."""

import argparse
import json
from typing import Any

from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import to_view
from intercom_sip.server import bind, serve_asgi

BODY = json.dumps(to_view(FACTORY)).encode()  # the same size as our GET answer
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    more = True
    while more:  # drain the body, as any handler of a POST must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve_asgi(app, bind("127.0.0.1", parser.parse_args().port))
