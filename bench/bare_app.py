"""The baseline: an ASGI app that answers a fixed JSON body, under our own HTTP server
(run as a script) or under uvicorn (`uvicorn bare_app:app`, in the bench's own venv)."""

import argparse
import json
from typing import Any

from intercom_sip.contract.fields import FACTORY
from intercom_sip.contract.settings import to_view

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
    from intercom_sip.server import HttpOptions, bind, serve_asgi

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="uvloop")
    args = parser.parse_args()
    serve_asgi(app, bind("127.0.0.1", args.port), HttpOptions(loop=args.loop))
