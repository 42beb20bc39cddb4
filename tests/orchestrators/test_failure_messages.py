"""The one mapping from a failure code to what a job's `error.message` says (gateway.messages),
and the codes a job may carry: every code the gateway gives has a product sentence, and no
sentence or shown code carries an internal (a method, a path, a status line, a URL, a key)."""

from __future__ import annotations

import re

import pytest

from gateway import messages
from gateway.jobs import Job
from gateway.messages import (
    DEFAULT_FAILURE_MESSAGE,
    FAILURE_MESSAGES,
    REFUNDED_CREATE_FAILURES,
    UPSTREAM_ERROR,
    failure_code,
    failure_message,
    rejection_code,
)
from gateway.retention import settlement_for

# What an app must never read: an HTTP verb, a path or URL, a status line, a key, a Python name.
INTERNALS = re.compile(
    r"\b(GET|POST|DELETE|PUT|PATCH)\b|/|\b[1-5]\d\d\b|https?:|api[-_]?key|Bearer|sig=|Error\b|Exception|_",
)

# Every failure code the gateway itself defines: the module's upper-case string constants whose
# value is a code (not the type alias or the message table).
GATEWAY_CODES = sorted(
    value
    for name, value in vars(messages).items()
    if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+", value)
)


def test_the_gateway_defines_the_codes_the_docs_list() -> None:
    assert {
        "cancelled",
        "timeout",
        "upstream_unavailable",
        "orchestration_failed",
        "orchestration_lost",
    } <= set(GATEWAY_CODES)


@pytest.mark.parametrize("code", GATEWAY_CODES)
def test_every_gateway_code_has_its_own_product_sentence(code: str) -> None:
    assert code in FAILURE_MESSAGES
    message = failure_message(code)
    assert message != DEFAULT_FAILURE_MESSAGE
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert INTERNALS.search(message) is None, message


@pytest.mark.parametrize("code", sorted(FAILURE_MESSAGES))
def test_every_sentence_in_the_table_is_free_of_internals(code: str) -> None:
    assert INTERNALS.search(FAILURE_MESSAGES[code]) is None, code
    assert failure_code(code) == code  # the gateway's codes pass the shape check unchanged


def test_codes_the_refund_rule_names_have_sentences() -> None:
    assert set(FAILURE_MESSAGES) >= REFUNDED_CREATE_FAILURES


@pytest.mark.parametrize(
    "code", ["content_policy_violation", "moderation_blocked", "upstream_400", "PROMPT_BLOCKED"]
)
def test_an_upstream_code_that_is_a_word_is_kept(code: str) -> None:
    assert failure_code(code) == code
    assert rejection_code(400, code, keep_upstream_code=True) == code


@pytest.mark.parametrize(
    "text",
    [
        "GET /videos: 503 Service Unavailable",
        "POST /openai/v1/videos: 400 Bad Request",
        "https://upstream.example/videos?api-key=secret",
        "Error: something broke",
        "",
        "x" * 65,
        None,
    ],
)
def test_upstream_text_in_place_of_a_code_is_shown_as_upstream_error(text: str | None) -> None:
    assert failure_code(text) == UPSTREAM_ERROR
    if text is not None:
        assert rejection_code(400, text, keep_upstream_code=True) == UPSTREAM_ERROR


def test_an_unknown_upstream_code_reads_the_default_sentence() -> None:
    assert failure_message("moderation_blocked") == DEFAULT_FAILURE_MESSAGE
    assert INTERNALS.search(DEFAULT_FAILURE_MESSAGE) is None


@pytest.mark.parametrize(
    ("status", "code"), [(401, "upstream_access_denied"), (403, "upstream_access_denied")]
)
def test_access_refusals_are_the_gateways_whatever_the_upstream_calls_them(status: int, code: str) -> None:
    assert rejection_code(status, "GET /videos: forbidden", keep_upstream_code=True) == code
    assert rejection_code(status, "anything", keep_upstream_code=False) == code


def test_a_refused_status_check_or_download_is_not_found_or_upstream_error() -> None:
    assert rejection_code(404, "GET /videos/x: 404", keep_upstream_code=False) == "upstream_job_not_found"
    assert rejection_code(400, "GET /videos/x: 400", keep_upstream_code=False) == UPSTREAM_ERROR


@pytest.mark.parametrize("runtime_status", ["Completed", "Failed", "Terminated", "Canceled", None])
def test_the_sweeps_settlements_use_the_same_mapping(runtime_status: str | None) -> None:
    job = Job(id="v", app_id="a", model="m", prompt="p", seconds="4", size="720x1280", created_at=0)
    settlement = settlement_for(job, runtime_status, now=10**9)
    assert settlement is not None
    assert settlement.message == failure_message(settlement.code)
    assert INTERNALS.search(settlement.message) is None
