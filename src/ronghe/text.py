"""Text that can be stored: no lone surrogates, no NUL characters.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``) and a NUL (``"\\u0000"``), and
Python's ``json`` decodes both into ``str``.  Neither can be written: SQLite's driver and
psycopg encode text as UTF-8, which has no surrogates, and PostgreSQL's text types refuse
NUL.  One such string in a task used to fail every later write that carried it (the result,
the webhook row), so requests are checked at the door (``ronghe.api.middleware``) and a
string that still gets in is scrubbed on the way out (``scrub``).
"""

from __future__ import annotations

import re
from typing import Any

# A surrogate is "lone" in a str by definition: a valid pair decodes into one code point.
_INVALID = re.compile("[\x00\ud800-\udfff]")
# Walking a whole decoded body costs a little; JSON can only carry these characters as a
# ``\u`` escape (``\ud800``-``\udfff``, ``\u0000``), or as raw bytes that start with 0xED
# (surrogates in not-quite-UTF-8, which ``json.loads`` of bytes lets through).
_ESCAPE = r"\\u(?:[dD][89a-fA-F]|0000)"
_JSON_TEXT_MARKER = re.compile(_ESCAPE)
_JSON_BYTES_MARKER = re.compile(_ESCAPE.encode() + rb"|\xed")


def describe(char: str) -> str:
    if char == "\x00":
        return "a NUL character (U+0000)"
    return f"a lone surrogate (U+{ord(char):04X}), which is not valid Unicode text"


def invalid_char(value: str) -> str | None:
    """The first character of ``value`` that cannot be stored, or None."""
    found = _INVALID.search(value)
    return found.group() if found else None


def field_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def first_invalid(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(field, what)`` for the first string in a decoded JSON value (keys included) that
    cannot be stored; None when every string is clean.  Iterative: nesting depth is bounded
    by the body parser already, but a stack costs nothing."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            bad = invalid_char(item)
            if bad is not None:
                return where or "body", describe(bad)
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                bad = invalid_char(key)
                if bad is not None:
                    return where or "body", f"a key with {describe(bad)}"
                children.append((field_path(where, key), child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((field_path(where, i), child)
                         for i, child in reversed(list(enumerate(item))))
    return None


def json_may_be_invalid(body: bytes | str) -> bool:
    """False when a JSON document certainly holds no string ``first_invalid`` would refuse."""
    if isinstance(body, bytes):
        return _JSON_BYTES_MARKER.search(body) is not None
    return _JSON_TEXT_MARKER.search(body) is not None


def scrub(value: str) -> str:
    """``value`` with each character that cannot be stored replaced by U+FFFD."""
    return _INVALID.sub("\ufffd", value) if _INVALID.search(value) else value


def scrub_json(value: Any) -> Any:
    """A copy of a decoded JSON value with every string (and key) scrubbed (callers check
    ``json_may_be_invalid`` first, so clean rows skip the copy)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(k): scrub_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    return value
