"""Forgiving JSON: accept the trailing commas of the vendor's own curl examples, and nothing
slower or bigger than that.

The spec's examples put a comma before the closing ``}`` (field notes); a user who pastes
them should not get an error.  That one repair is all real clients need, so instead of a
general JSON5 parser (pure Python, seconds per megabyte) the lenient path is a single bounded
pass that drops commas standing before ``}`` or ``]`` outside strings, on bodies of at most
``LENIENT_MAX_BYTES`` and ``LENIENT_MAX_DEPTH`` levels of nesting.  Anything else that is
not strict JSON gets a 400 that says where.
"""

from __future__ import annotations

import json
import re

LENIENT_MAX_BYTES = 64 * 1024
LENIENT_MAX_DEPTH = 64

# A string literal, a bracket, a comma, or a run of anything else (numbers, literals, space).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{},]|[^"\[\]{},]+', re.S)


class BadJson(ValueError):
    """A JSON body the endpoint must not see; the message is the client's error."""


def _too_deep() -> BadJson:
    return BadJson("request body is not valid JSON: nested too deeply "
                   f"(at most {LENIENT_MAX_DEPTH} levels)")


def is_strict(body: bytes) -> bool:
    """True when ``body`` is strict JSON.  C speed; JSON nested beyond the interpreter's
    recursion limit raises BadJson instead of surfacing as a RecursionError."""
    try:
        json.loads(body)
        return True
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        return False


def repair(body: bytes) -> bytes:
    """The body with trailing commas removed, as strict JSON; BadJson when that is not
    enough, or the body is beyond the lenient path's bounds."""
    try:
        json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        strict_error = exc
    else:
        return body
    if len(body) > LENIENT_MAX_BYTES:
        raise BadJson(f"request body is not valid JSON{_where(strict_error)} (trailing "
                      f"commas are forgiven only in bodies of at most {LENIENT_MAX_BYTES} "
                      "bytes)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadJson("request body is not valid JSON: it is not UTF-8") from None
    fixed = _drop_trailing_commas(text)
    try:
        json.loads(fixed)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise BadJson("request body is not valid JSON") from None
    return fixed.encode("utf-8")


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    depth = 0
    pending_comma = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            depth += 1
            if depth > LENIENT_MAX_DEPTH:
                raise _too_deep()
        elif token in ("}", "]"):
            depth -= 1
            pending_comma = False  # the comma right before a closing bracket is dropped
        elif token.isspace():
            out.append(token)
            continue
        if pending_comma:
            out.append(",")
            pending_comma = False
        if token == ",":
            pending_comma = True
            continue
        out.append(token)
    if pending_comma:
        out.append(",")
    return "".join(out)


def _where(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f": {exc.msg} at line {exc.lineno} column {exc.colno}"
    return ""
