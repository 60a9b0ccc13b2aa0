"""Every answer the tests see, checked against the OpenAPI document the service serves:
its status declared for that route and method, its content type, its required headers,
its body valid against the declared schema. So every test also tests the document."""

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from jsonschema import Draft202012Validator

from intercom_sip.api import openapi

# Any request may get these from the server, whatever its route.
_SERVER: Final = {"400": "BadRequest", "421": "Misdirected", "431": "HeadersTooLarge"}
_SERVER_BUG: Final = {"500": "Internal"}


class Conformance:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        self._components = document["components"]
        self._validators: dict[str, Draft202012Validator] = {}

    def check(
        self,
        method: str,
        path: str,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> None:
        """Raise AssertionError, saying what breaks the document, unless the answer fits."""
        where = f"{method} {path} -> {status}"
        responses = self._responses(method, path)
        declared = responses.get(str(status))
        assert declared is not None, f"{where}: status not declared ({sorted(responses)})"
        declared = self._resolve(declared)
        named = {name.lower(): value for name, value in headers}
        content_type = named.get("content-type", "").partition(";")[0].strip()
        assert content_type in declared["content"], f"{where}: content type {content_type!r}"
        for name, header in declared.get("headers", {}).items():
            value = named.get(name.lower())
            if header.get("required"):
                assert value is not None, f"{where}: no {name} header"
            if value is not None:
                self._validate(header["schema"], value, f"{where}: header {name}")
        schema = declared["content"][content_type]["schema"]
        value = json.loads(body) if content_type == "application/json" else body.decode()
        self._validate(schema, value, f"{where}: body")

    def _responses(self, method: str, path: str) -> dict[str, Any]:
        operations = self._document["paths"].get(path)
        if method == "HEAD" and operations is not None and "get" in operations:
            method = "GET"  # RFC 9110 §9.3.2: answered as GET (the server drops the body)
        if operations is not None and method.lower() in operations:
            return {**_SERVER_BUG, **operations[method.lower()]["responses"]}
        if operations is None:
            own = {"404": "NotFound"}
        else:
            protected = any("security" in op for op in operations.values())
            own = {"405": "MethodNotAllowed", **({"401": "LogIn"} if protected else {})}
        return {
            status: {"$ref": f"#/components/responses/{name}"}
            for status, name in {**_SERVER, **_SERVER_BUG, **own}.items()
        }

    def _resolve(self, item: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = item.get("$ref")
        if ref is None:
            return item
        resolved: Mapping[str, Any] = self._components["responses"][ref.rsplit("/", 1)[1]]
        return resolved

    def _validate(self, schema: Mapping[str, Any], value: Any, where: str) -> None:
        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            validator = Draft202012Validator({**schema, "components": self._components})
            self._validators[key] = validator
        problems = [error.message for error in validator.iter_errors(value)]
        assert not problems, f"{where} breaks the document: {problems}; value: {value!r}"


DOCUMENT: Final = Conformance(openapi.build())
