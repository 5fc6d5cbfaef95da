"""Structured output, tool calls and n > 1 through the official ``openai`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from tests.chat_support import ChatServer

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12},
                 "maxItems": 3},
    },
    "required": ["name", "age", "color"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40},
                           "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "description": "The time now"}}
ASK = [{"role": "user", "content": "What's the weather like in Paris?"}]


@pytest.fixture(scope="module")
def client(chat: ChatServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{chat.url}/v1", api_key=chat.key, max_retries=0) as c:
        yield c


def test_json_object_always_parses(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="smollm2", max_tokens=200, temperature=0,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Describe a person as JSON with name, age and "
                                               "favourite color."}])
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)


def test_json_schema_output_validates_streamed_or_not(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema",
           "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    ask = [{"role": "user", "content": "Invent a person; answer in JSON."}]
    whole = client.chat.completions.create(model="smollm2", max_tokens=200, temperature=1.0,
                                           seed=11, response_format=fmt, messages=ask)
    assert whole.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(whole.choices[0].message.content or ""), PERSON)
    chunks = list(client.chat.completions.create(
        model="smollm2", max_tokens=200, temperature=1.0, seed=12, response_format=fmt,
        messages=ask, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), PERSON)


def test_unsupported_schema_features_are_named(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="smollm2", messages=ASK,
            response_format={"type": "json_schema", "json_schema": {"name": "x",
                                                                    "schema": schema}})
    message = str(info.value)
    assert "'minimum' at $.properties.age" in message
    assert "'uniqueItems' at $.properties.tags" in message
    assert info.value.body["param"] == "response_format"  # type: ignore[index]


def test_required_tool_call_has_valid_arguments(client: openai.OpenAI) -> None:
    # Greedy: at temperature 1 this small model may keep adding parallel calls until the
    # token limit, which is a valid answer but not a finished one.
    r = client.chat.completions.create(model="smollm2", messages=ASK, tools=[WEATHER, CLOCK],
                                       tool_choice="required", max_tokens=150, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert calls and choice.message.content is None
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        tool = {"get_weather": WEATHER, "get_time": CLOCK}[call.function.name]
        args = json.loads(call.function.arguments)
        jsonschema.validate(args, tool["function"].get("parameters", {}))  # type: ignore[attr-defined]


def test_named_tool_choice_streams_one_call_in_deltas(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="smollm2", messages=ASK, tools=[CLOCK, WEATHER], max_tokens=150, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(pieces) >= 2  # the head (id, name) first, then argument text
    head = pieces[0]
    assert head.index == 0 and head.id and head.type == "function"
    assert head.function is not None and head.function.name == "get_weather"
    assert all(p.index == 0 and p.id is None for p in pieces[1:])
    args = "".join(p.function.arguments or "" for p in pieces if p.function)
    jsonschema.validate(json.loads(args), WEATHER["function"]["parameters"])  # type: ignore[index]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_results_continue_the_conversation(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="smollm2", messages=ASK, tools=[WEATHER],
                                           tool_choice="required", max_tokens=150,
                                           parallel_tool_calls=False)
    call = (first.choices[0].message.tool_calls or [])[0]
    history = [*ASK, first.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id,
                "content": json.dumps({"temperature": 21, "sky": "sunny"})}]
    second = client.chat.completions.create(model="smollm2", messages=history, tools=[WEATHER],
                                            tool_choice="none", max_tokens=40, temperature=0)
    choice = second.choices[0]
    assert choice.message.content and not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")
    # The call and its result are in the prompt the model saw.
    assert second.usage is not None and first.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens - 200 + 20


def test_tool_choice_none_and_auto(client: openai.OpenAI) -> None:
    none = client.chat.completions.create(model="smollm2", messages=ASK, tools=[WEATHER],
                                          tool_choice="none", max_tokens=20)
    assert not none.choices[0].message.tool_calls and none.choices[0].message.content
    auto = client.chat.completions.create(model="smollm2", messages=ASK, tools=[WEATHER],
                                          max_tokens=60, temperature=0)
    for call in auto.choices[0].message.tool_calls or []:
        jsonschema.validate(json.loads(call.function.arguments),
                            WEATHER["function"]["parameters"])  # type: ignore[index]


def test_bad_tool_requests_are_400s(client: openai.OpenAI) -> None:
    cases = [
        ({"tools": [WEATHER], "tool_choice": {"type": "function",
                                              "function": {"name": "nope"}}}, "nope"),
        ({"tool_choice": "required"}, "needs at least one function"),
        ({"tools": [WEATHER, WEATHER]}, "unique"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "name"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        ({"n": 9}, "n"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(openai.BadRequestError, match=needle):
            client.chat.completions.create(model="smollm2", messages=ASK, **kwargs)


def test_n_choices_whole_and_streamed(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2", messages=ASK, n=3, max_tokens=12,
                                       seed=5, temperature=1.0)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert all(texts) and len(set(texts)) > 1
    assert r.usage is not None and r.usage.completion_tokens <= 36
    chunks = list(client.chat.completions.create(
        model="smollm2", messages=ASK, n=2, max_tokens=12, seed=5, temperature=1.0,
        stream=True, stream_options={"include_usage": True}))
    streamed = ["".join(c.choices[0].delta.content or "" for c in chunks
                        if c.choices and c.choices[0].index == i) for i in range(2)]
    assert streamed == texts[:2]  # same seeds, same text, whether streamed or not
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 24
