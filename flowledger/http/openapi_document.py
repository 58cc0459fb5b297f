"""The app's OpenAPI document as a file, for the dashboard's generated client.

``python -m flowledger.http.openapi_document ui/openapi.json`` writes what ``/openapi.json``
serves with the default settings, without its examples: some are generated at random (they
differ with what the process generated before) and types are not made from them.
``npm --prefix ui run api`` runs it and generates ``ui/src/api/schema.d.ts`` from it, and a
test fails when the committed copy is not the app's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from litestar._openapi.plugin import OpenAPIPlugin
from litestar.serialization import encode_json

from flowledger.http.app import create_app
from flowledger.runtime.settings import Settings

EXAMPLE_KEYS = frozenset({"example", "examples"})


def without_examples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_examples(v) for k, v in value.items() if k not in EXAMPLE_KEYS}
    if isinstance(value, list):
        return [without_examples(item) for item in value]
    return value


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    app = create_app(settings or Settings())
    schema = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    document: dict[str, Any] = without_examples(json.loads(encode_json(schema)))
    return document


def openapi_text(settings: Settings | None = None) -> str:
    return json.dumps(openapi_document(settings), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = openapi_text()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
