"""The vendor-compatible HTTP API, as a plain ASGI application."""
