"""A raw client of the live events: the head, then the chunked body as SSE frames."""

import json
import socket
from typing import Any

from tests.conformance import DOCUMENT


class EventStream:
    def __init__(self, port: int, token: str | None, path: str = "/api/v1/events") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
        self._raw = b""
        self._text = b""
        self.ended = False
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        pairs = (line.split(": ", 1) for line in lines[1:])
        self.headers = {name.lower(): value for name, value in pairs}
        self.body = b""
        if "content-length" in self.headers:  # a refusal: JSON
            self.body = self._exactly(int(self.headers["content-length"]))
            self.ended = True
        items = [(name, value) for name, value in self.headers.items()]
        DOCUMENT.check("GET", path, self.status, items, self.body)

    def close(self) -> None:
        self.sock.close()

    def frame(self) -> str | None:
        """The next frame (event or comment) as text, or None at the end of the stream."""
        while b"\n\n" not in self._text:
            if not self._chunk():
                return None
        frame, _, self._text = self._text.partition(b"\n\n")
        return frame.decode()

    def event(self) -> tuple[str, Any] | None:
        """The next event, comments skipped; None at the end."""
        while (frame := self.frame()) is not None:
            if frame.startswith(":"):
                continue
            kind, data = frame.split("\n")
            assert kind.startswith("event: ") and data.startswith("data: "), frame
            return kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))
        return None

    def _chunk(self) -> bool:
        if self.ended:
            return False
        size = int(self._until(b"\r\n"), 16)
        data = self._exactly(size + 2)[:-2]
        if size == 0:
            self.ended = True
            return False
        self._text += data
        return True

    def _until(self, mark: bytes) -> bytes:
        while mark not in self._raw:
            self._read()
        out, _, self._raw = self._raw.partition(mark)
        return out

    def _exactly(self, size: int) -> bytes:
        while len(self._raw) < size:
            self._read()
        out, self._raw = self._raw[:size], self._raw[size:]
        return out

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed without the end of the stream")
        self._raw += data
