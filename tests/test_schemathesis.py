"""schemathesis against the served document: every route, with and without a token, on an
instance of its own. No server error, no answer that breaks the document."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.served import Served

pytestmark = pytest.mark.served

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
# Examples per operation and run, the fewest cases the two runs make together, and the
# phases of the run without a token. The full count (~1,200 cases a run with the coverage
# phase's ~800) is the slow test's, which make test-slow runs; the default run takes a
# twentieth of the examples, and without a token (401s, mostly) fuzzes only.
QUICK = (5, 800, "--phases=fuzzing")
FULL = (100, 2000, "--phases=examples,coverage,fuzzing,stateful")


def schemathesis(served: Served, report: Path, examples: int, *options: str) -> dict[str, Any]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{served.url}/api/openapi.json",
        f"--checks={CHECKS}",
        f"--max-examples={examples}",
        "--seed=6",  # the same cases each run: a failure here is reproducible
        "--workers=1",
        "--generation-database=none",
        "--request-timeout=30",
        "--report=json",
        f"--report-json-path={report}",
        "--no-color",
        *options,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=report.parent
    )
    assert report.exists(), done.stdout + done.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    assert (result["exit_code"], result["failures"], result["errors"]) == (0, [], []), done.stdout[
        -6000:
    ]
    operations = result["operations"]
    assert operations["tested"] == operations["selected"] > 0
    return result


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    served: Served, tmp_path: Path
) -> None:
    check_the_document(served, tmp_path, *QUICK)


@pytest.mark.slow
def test_schemathesis_with_the_full_example_count(served: Served, tmp_path: Path) -> None:
    check_the_document(served, tmp_path, *FULL)


def check_the_document(
    served: Served, tmp_path: Path, examples: int, min_cases: int, without_token: str
) -> None:
    token = served.login()
    # With a token; not logout, which would end the token for the rest of the run, nor
    # the events, whose stream never ends by itself (tests/api/test_events.py has them).
    with_token = schemathesis(
        served,
        tmp_path / "with-token.json",
        examples,
        f"--header=Authorization: Bearer {token}",
        "--exclude-operation-id-regex=^(logout|events)",
    )
    without = schemathesis(served, tmp_path / "without.json", examples, without_token)
    assert without["operations"]["selected"] == with_token["operations"]["selected"] + 4
    cases = with_token["test_cases"]["generated"] + without["test_cases"]["generated"]
    assert cases >= min_cases
    assert served.process is not None and served.process.poll() is None  # still serving
    assert "Traceback" not in served.log
