"""A bounded schemathesis run against the app's own /openapi.json (issue 12).

Every operation, as a signed-in user (the token in the body where an operation takes one,
and as the Authorization header), with the checks the issue names: no server error, and
every response (status code, content type, body) as the document describes it.  Examples
are derived deterministically (``derandomize``), so a failure reproduces on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test dependency")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.hypothesis.builder import (  # noqa: E402
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ronghe.api import waiting  # noqa: E402
from ronghe.app import create_app  # noqa: E402
from tests.conftest import DemoModel, make_account, make_settings  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# The image front doors (OpenAI Images, A1111) wait for the task a valid request submits,
# which no worker runs here: their documented 504 (the task outlasted the wait; it stays in
# the history) is the right answer to a valid request, every other 5xx still fails.
WAITS_FOR_A_TASK = {"POST /v1/images/generations", "POST /v1/images/edits",
                    "POST /v1/images/variations", "POST /sdapi/v1/txt2img",
                    "POST /sdapi/v1/img2img", "POST /sdapi/v1/extra-single-image"}


@schemathesis.check
def not_a_server_error_but_the_wait(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 504:
        return None
    return not_a_server_error(ctx, response, case)


WAITING_CHECKS = [not_a_server_error_but_the_wait, *CHECKS[1:]]
TOKEN: dict[str, str] = {}
TOKEN_APP: dict[str, Any] = {}
# Per operation: about 50 operations x 25 examples stay within a few minutes here.
EXAMPLES = 25
# A signed-in task_events call is an endless event stream that each example holds open for
# ~10 s (250 s of the run at 25 examples); its refusals are immediate and its stream's
# contents are tested in tests/api/events, so a few examples cover what fuzzing adds.
FEWER_EXAMPLES = {"GET /api/v1b/task_events": 4}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory,
               demo_model: DemoModel) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    # No chat models (fuzzed prompts must not start llama.cpp), no worker (the app's
    # lifespan does not run, so submitted tasks stay pending), limits at their defaults.
    app = create_app(make_settings(Path(data), image_models=[demo_model.spec()],
                                   chat_models=[], cpu_threads=1))
    account = make_account(app, "fuzz@example.com")
    TOKEN.update(token=account.token, key=account.api_key)
    TOKEN_APP["app"] = app
    # The image front doors (OpenAI Images, A1111) wait for their task, which no worker runs
    # here: they answer their documented 504 at once instead of after 15 minutes.
    wait = waiting.IMAGE_WAIT_SECONDS, waiting.IMAGE_POLL_SECONDS
    waiting.IMAGE_WAIT_SECONDS, waiting.IMAGE_POLL_SECONDS = 0.02, 0.01
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        waiting.IMAGE_WAIT_SECONDS, waiting.IMAGE_POLL_SECONDS = wait
        app.state.services.close()


def call_one(case: Any) -> None:
    # Fuzzed calls may revoke the token, change the password or disable the account
    # (admin routes): start every case signed in afresh.
    services = TOKEN_APP["app"].state.services
    services.auth.set_active("fuzz@example.com", True)
    TOKEN["token"] = services.auth.issue_token("fuzz@example.com").secret
    if isinstance(case.body, dict) and "token" in _body_fields(case):
        case.body["token"] = TOKEN["token"]
    if isinstance(case.body, dict) and case.body.get("add_prompt"):
        # This server has no chat model (see api_schema), so add_prompt answers its
        # documented 503 by design (tests/api/images/test_add_prompt.py covers that).
        case.body["add_prompt"] = False
    bearer = TOKEN["key"] if "/nlp/" in case.path or case.path.startswith("/v1/") else (
        TOKEN["token"])
    checks = WAITING_CHECKS if case.operation.label in WAITS_FOR_A_TASK else CHECKS
    case.call_and_validate(headers={"Authorization": f"Bearer {bearer}"}, checks=checks)


# Every phase the issue names, per operation: the schema's examples, then the coverage
# phase's explicit cases (boundary values, declared and undeclared content types, missing
# and extra parts), then the fuzzing phase's generated ones.
MODES = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING]


def test_no_server_errors_and_every_answer_matches_the_schema(api_schema: Any) -> None:
    failures: list[str] = []
    labels: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        def run(case: Any) -> None:
            call_one(case)

        test = create_test(operation=operation, test_func=run, config=HypothesisTestConfig(
            project=api_schema.config, modes=MODES, settings=settings(
                max_examples=FEWER_EXAMPLES.get(operation.label, EXAMPLES), deadline=None,
                derandomize=True, database=None, suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate])))
        try:
            test()
        except BaseException as exc:  # every operation's failures, then report them all
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert len(labels) >= 30, labels  # every operation of the document was exercised
    assert not failures, "\n\n".join(failures)


def _body_fields(case: Any) -> set[str]:
    body = case.operation.definition.raw.get("requestBody") or {}
    for media in (body.get("content") or {}).values():
        schema_ = media.get("schema") or {}
        ref = schema_.get("$ref")
        if ref:
            schema_ = case.operation.schema.raw_schema
            for part in ref.lstrip("#/").split("/"):
                schema_ = schema_.get(part, {})
        return set((schema_.get("properties") or {}).keys())
    return set()
