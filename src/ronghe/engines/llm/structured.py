"""Structured output: JSON Schema -> a llama.cpp grammar, so the output always fits.

The converter is llama-cpp-python's (``llama_grammar.SchemaConverter``, a port of
llama.cpp's ``json_schema_to_grammar.py``).  It silently ignores what it does not
understand (``minimum``, ``uniqueItems``, ``not``, …), which would let output through that
does not validate; so every schema is checked first and any keyword outside what the
converter enforces is refused, naming the keyword and where it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, SchemaConverter

from ronghe.engines.llm.base import ResponseFormat
from ronghe.engines.llm.sampling import Grammar
from ronghe.errors import BadRequest

# What the grammar enforces.
ENFORCED = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "prefixItems",
    "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
    "definitions", "pattern", "format", "minLength", "maxLength",
})
# Annotations: no effect on what validates.
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$schema", "$id", "$comment",
    "deprecated", "readOnly", "writeOnly",
})
TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4",
                     "uuid5"})
MAX_SCHEMA_CHARS = 100_000
MAX_DEPTH = 32


def response_grammar(fmt: ResponseFormat | None) -> Grammar | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Grammar(JSON_GBNF)
    return Grammar(schema_gbnf(fmt.schema or {}, "response_format.json_schema.schema"))


def schema_gbnf(schema: Any, where: str, rule: str = "",
                prop_order: dict[str, int] | None = None,
                converter: SchemaConverter | None = None) -> str:
    """GBNF for ``schema`` (rules prefixed ``rule``); BadRequest naming what is unsupported."""
    check_schema(schema, where)
    own = converter is None
    conv = converter or SchemaConverter(prop_order=prop_order or {}, allow_fetch=False,
                                        dotall=False, raw_pattern=False)
    try:
        resolved = conv.resolve_refs(json.loads(json.dumps(schema)), "input")
        conv.visit(resolved, rule)
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise BadRequest(f"{where}: cannot be turned into a grammar: {exc}",
                         field=where.split(".")[0]) from exc
    return conv.format_grammar() if own else ""


def check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise BadRequest(f"{where}: must be a JSON Schema object", field=where.split(".")[0])
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise BadRequest(f"{where}: at most {MAX_SCHEMA_CHARS} characters of JSON",
                         field=where.split(".")[0])
    problems: list[str] = []
    _walk(schema, "$", 0, problems)
    if problems:
        shown = "; ".join(problems[:10]) + ("; …" if len(problems) > 10 else "")
        raise BadRequest(
            f"{where}: unsupported JSON Schema feature(s): {shown}. Output is constrained by a "
            f"grammar that enforces only: {', '.join(sorted(ENFORCED))}",
            field=where.split(".")[0])


def _walk(node: Any, path: str, depth: int, problems: list[str]) -> None:
    if isinstance(node, bool):
        if node is False:
            problems.append(f"'false' schema at {path}")
        return
    if not isinstance(node, dict):
        problems.append(f"a non-object schema at {path}")
        return
    if depth > MAX_DEPTH:
        problems.append(f"nesting deeper than {MAX_DEPTH} at {path}")
        return
    for key in node:
        if key not in ENFORCED and key not in ANNOTATIONS:
            problems.append(f"'{key}' at {path}")
    kind = node.get("type")
    for t in kind if isinstance(kind, list) else [kind]:
        if t is not None and t not in TYPES:
            problems.append(f"type {t!r} at {path}")
    if "format" in node and node["format"] not in FORMATS:
        problems.append(f"format {node['format']!r} at {path} (supported: "
                        f"{', '.join(sorted(FORMATS))})")
    if ("pattern" in node or "format" in node) and ("minLength" in node or "maxLength" in node):
        problems.append(f"minLength/maxLength together with pattern or format at {path}")
    pattern = node.get("pattern")
    if pattern is not None and not (isinstance(pattern, str) and pattern.startswith("^")
                                    and pattern.endswith("$")):
        problems.append(f"a pattern not anchored with ^…$ at {path}")
    ref = node.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith("#/")):
        problems.append(f"$ref {ref!r} at {path} (only local '#/…' references)")
    props = node.get("properties")
    if isinstance(props, dict):
        missing = [r for r in node.get("required", []) if r not in props]
        if missing and node.get("additionalProperties") in (None, False):
            problems.append(f"required {missing} not in properties at {path}")
        for name, sub in props.items():
            _walk(sub, f"{path}.properties.{name}", depth + 1, problems)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}.additionalProperties", depth + 1,
              problems)
    items = node.get("items")
    if isinstance(items, dict):
        _walk(items, f"{path}.items", depth + 1, problems)
    for key in ("prefixItems", "anyOf", "oneOf", "allOf") + (
            ("items",) if isinstance(items, list) else ()):
        for i, sub in enumerate(node.get(key) or []):
            _walk(sub, f"{path}.{key}[{i}]", depth + 1, problems)
    for i, sub in enumerate(node.get("allOf") or []):
        if isinstance(sub, dict) and set(sub) - {"properties", "required", "type", "$ref",
                                                  "anyOf"} - ANNOTATIONS:
            problems.append(f"allOf[{i}] at {path} other than object properties")
    for key in ("$defs", "definitions"):
        for name, sub in (node.get(key) or {}).items():
            _walk(sub, f"{path}.{key}.{name}", depth + 1, problems)


_RULE_CHARS = re.compile(r"[^a-zA-Z0-9-]+")


def rule_name(text: str) -> str:
    """A GBNF rule name made from arbitrary text (function names have underscores)."""
    return _RULE_CHARS.sub("-", text)
