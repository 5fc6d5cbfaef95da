"""Tool-call prompts, grammars and the streaming parser; schema checks for structured output."""

from __future__ import annotations

import json

import pytest

from ronghe.engines.llm.base import (
    ChatMessage,
    GenerationParams,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from ronghe.engines.llm.structured import check_schema, response_grammar
from ronghe.engines.llm.tools import TRIGGER, ToolCallParser, prepare_tools
from ronghe.errors import BadRequest

WEATHER = Tool("get_weather", "Weather in a city", {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def feed_all(pieces: list[str]) -> tuple[str, list[ToolCallDelta]]:
    parser = ToolCallParser()
    text, calls = "", []
    for piece in pieces:
        t, c = parser.feed(piece)
        text, calls = text + t, calls + c
    t, c = parser.flush()
    return text + t, calls + c


def test_parser_splits_text_and_calls_however_the_text_is_cut() -> None:
    output = ('Let me check. <tool_call>\n{"name": "get_weather", "arguments": '
              '{"city": "Paris", "opts": {"a": "}"}}}\n</tool_call>\n<tool_call>\n'
              '{"name": "get_time", "arguments": {}}\n</tool_call>')
    for size in (1, 2, 3, 7, len(output)):
        text, calls = feed_all([output[i:i + size] for i in range(0, len(output), size)])
        assert text == "Let me check. "
        heads = [c for c in calls if c.id]
        assert [(c.index, c.name) for c in heads] == [(0, "get_weather"), (1, "get_time")]
        assert all(c.id and c.id.startswith("call_") for c in heads)
        args = ["".join(c.arguments for c in calls if c.index == i) for i in (0, 1)]
        assert json.loads(args[0]) == {"city": "Paris", "opts": {"a": "}"}}
        assert json.loads(args[1]) == {}


def test_parser_gives_back_text_that_only_looked_like_a_call() -> None:
    assert feed_all(["a <tool", "_cal", "l> oops</tool_call> b"]) == (
        "a <tool_call> oops</tool_call> b", [])
    assert feed_all(["x <tool_c"]) == ("x <tool_c", [])
    text, calls = feed_all(['<tool_call>\n{"name": "f", "arguments": {"a": 1, "b'])
    assert text == "" and "".join(c.arguments for c in calls) == '{"a": 1, "b'  # cut by length


def test_history_renders_calls_and_results_for_any_template() -> None:
    params = GenerationParams([
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "get_weather",
                                                          '{"city": "Paris"}'),)),
        ChatMessage("tool", '{"temp": 21}', tool_call_id="c1"),
        ChatMessage("tool", '{"temp": 22}', tool_call_id="c2"),
    ], tools=[WEATHER], tool_choice="none")
    messages, grammar = prepare_tools(params)
    assert grammar is None and [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[1].content == ('<tool_call>\n{"name": "get_weather", "arguments": '
                                   '{"city": "Paris"}}\n</tool_call>')
    assert messages[2].content.count("<tool_response>") == 2


def test_tool_choice_picks_the_grammar() -> None:
    base = [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather?")]
    clock = Tool("get_time")
    auto_msgs, auto = prepare_tools(GenerationParams(base, tools=[WEATHER, clock]))
    assert auto is not None and auto.lazy_trigger == TRIGGER
    assert auto_msgs[0].content.startswith("Be brief.") and '"get_time"' in auto_msgs[0].content
    _, required = prepare_tools(GenerationParams(base, tools=[WEATHER, clock],
                                                 tool_choice="required"))
    assert required is not None and required.lazy_trigger is None
    assert "get_time" in required.gbnf and "( \"\\n\" tool-call )*" in required.gbnf
    _, named = prepare_tools(GenerationParams(base, tools=[WEATHER, clock],
                                              tool_choice="get_time"))
    assert named is not None and "get_weather" not in named.gbnf.split("call ::=")[1].split(
        "\n")[0] and "tool-call )*" not in named.gbnf
    with pytest.raises(BadRequest, match="response_format"):
        prepare_tools(GenerationParams(base, tools=[WEATHER],
                                       response_format=ResponseFormat("json_object")))


def test_schema_checks_name_what_the_grammar_cannot_enforce() -> None:
    check_schema({"type": "object", "properties": {
        "when": {"type": "string", "format": "date-time"},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/kid"}, "maxItems": 3}},
        "$defs": {"kid": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        "required": ["when"], "title": "t", "description": "d"}, "s")
    bad = {"type": "object", "patternProperties": {}, "properties": {
        "a": {"type": "number", "exclusiveMaximum": 3},
        "b": {"type": "string", "format": "email"},
        "c": {"type": "string", "pattern": "[a-z]+"},
        "d": {"$ref": "https://example.com/s.json"},
        "e": {"not": {"type": "null"}}}, "required": ["zz"]}
    with pytest.raises(BadRequest) as info:
        check_schema(bad, "response_format.json_schema.schema")
    msg = info.value.msg
    for needle in ("'patternProperties' at $", "'exclusiveMaximum' at $.properties.a",
                   "format 'email' at $.properties.b", "not anchored with ^…$ at $.properties.c",
                   "only local", "'not' at $.properties.e", "required ['zz']"):
        assert needle in msg, needle
    assert info.value.field == "response_format"
    assert response_grammar(ResponseFormat("text")) is None
    grammar = response_grammar(ResponseFormat("json_schema", {"enum": ["a", "b"]}))
    assert grammar is not None and '"\\"a\\""' in grammar.gbnf
