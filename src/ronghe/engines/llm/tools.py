"""Tool calls on a local model: the prompt that offers tools, the grammar, the parser.

Ronghe offers tools in the Hermes format (what Qwen2.5, Hermes and SmolLM3 are trained on)
whatever the model's chat template: the function signatures go into the system message, the
model answers a call as ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``, and
earlier calls and their results are written back into the conversation the same way (tool
results as a user turn in ``<tool_response>`` tags, so templates that only know system, user
and assistant still render them).

- ``required`` or a named function: the whole answer is grammar-constrained to calls whose
  arguments fit the function's ``parameters`` schema.
- ``auto``: a lazy grammar, which applies from the moment the model writes ``<tool_call>``:
  the model may answer in text, and a call it starts is constrained like a forced one.
- ``none``: no tools in the prompt, no grammar; earlier calls still render.
"""

from __future__ import annotations

import json
import re
import uuid

from llama_cpp.llama_grammar import SchemaConverter

from ronghe.engines.llm.base import (
    ChatDelta,
    ChatMessage,
    ChatStream,
    GenerationParams,
    TokenLogprob,
    Tool,
    ToolCallDelta,
)
from ronghe.engines.llm.sampling import Grammar
from ronghe.engines.llm.structured import rule_name, schema_gbnf
from ronghe.errors import BadRequest

OPEN, CLOSE = "<tool_call>", "</tool_call>"
# The lazy grammar starts at the first "<tool_call>" (llama.cpp feeds it from group 1 on).
TRIGGER = r"[\s\S]*?(<tool_call>)[\s\S]*"
# Complete only once the arguments' first character is there, so no space leaks into them.
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\S)')
_MAX_HEAD = 512  # a call head longer than this is not one the grammar would have allowed

SYSTEM = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def prepare_tools(params: GenerationParams) -> tuple[list[ChatMessage], Grammar | None]:
    """The messages as the template should see them, and the grammar tool_choice asks for."""
    messages = _render_history(params.messages)
    if not params.tools or params.tool_choice == "none":
        return messages, None
    if params.response_format is not None and params.response_format.type != "text":
        raise BadRequest("response_format: cannot be combined with tools unless tool_choice "
                         "is 'none'", field="response_format")
    listing = "\n".join(json.dumps({"type": "function", "function": {
        "name": t.name, "description": t.description, "parameters": t.parameters}},
        ensure_ascii=False) for t in params.tools)
    prompt = SYSTEM.format(tools=listing)
    if messages and messages[0].role == "system":
        messages[0] = ChatMessage("system", f"{messages[0].content}\n\n{prompt}")
    else:
        messages.insert(0, ChatMessage("system", prompt))
    choice = params.tool_choice
    tools = params.tools
    if choice not in ("auto", "required"):
        tools = [t for t in params.tools if t.name == choice]
    # A named function is called once, as OpenAI does; "required" may call several.
    gbnf = tool_grammar(tools, params.parallel_tool_calls and choice in ("auto", "required"))
    return messages, Grammar(gbnf, lazy_trigger=TRIGGER if choice == "auto" else None,
                             field="tools")


def tool_grammar(tools: list[Tool], parallel: bool) -> str:
    conv = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alternatives = []
    for i, tool in enumerate(tools):
        args = rule_name(f"{tool.name}-args")
        schema = tool.parameters or {"type": "object", "properties": {}}
        schema_gbnf(schema, f"tools[{i}].function.parameters", args, converter=conv)
        head = conv._format_literal(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        alternatives.append(f'{head} {args} "}}"')
    rules = conv.format_grammar()
    repeat = ' ( "\\n" tool-call )*' if parallel else ""
    return (f"root ::= tool-call{repeat}\n"
            f'tool-call ::= "{OPEN}\\n" call "\\n{CLOSE}"\n'
            f"call ::= {' | '.join(alternatives)}\n{rules}\n")


def _render_history(messages: list[ChatMessage]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for m in messages:
        if m.role == "tool":
            text = f"<tool_response>\n{m.content}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.startswith("<tool_response>"):
                out[-1] = ChatMessage("user", f"{out[-1].content}\n{text}")
            else:
                out.append(ChatMessage("user", text))
        elif m.role == "assistant" and m.tool_calls:
            parts = [m.content] if m.content else []
            parts += [f'{OPEN}\n{{"name": {json.dumps(c.name)}, "arguments": '
                      f'{c.arguments or "{}"}}}\n{CLOSE}' for c in m.tool_calls]
            out.append(ChatMessage("assistant", "\n".join(parts)))
        else:
            out.append(ChatMessage(m.role, m.content))
    return out


class ToolCallParser:
    """Splits generated text into content and tool-call pieces, as it streams.

    Text that may be the start of ``<tool_call>`` is held back until it is clear; inside a
    call, argument text is passed on as it comes except from the last ``}`` on, which may be
    the call object's own closing brace.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._state = "text"
        self.calls = 0

    def feed(self, text: str) -> tuple[str, list[ToolCallDelta]]:
        self._buf += text
        content: list[str] = []
        pieces: list[ToolCallDelta] = []
        while True:
            if self._state == "text":
                i = self._buf.find(OPEN)
                if i >= 0:
                    if not (self.calls and not self._buf[:i].strip()):
                        content.append(self._buf[:i])
                    self._buf, self._state = self._buf[i + len(OPEN):], "head"
                    continue
                hold = _partial(self._buf, OPEN)
                piece = self._buf[: len(self._buf) - hold]
                if not (self.calls and not piece.strip()):  # no blank lines between calls
                    content.append(piece)
                self._buf = self._buf[len(self._buf) - hold:]
                break
            if self._state == "head":
                m = _HEAD.match(self._buf)
                if m:
                    name = json.loads(f'"{m.group(1)}"')
                    pieces.append(ToolCallDelta(self.calls, "", id=f"call_{uuid.uuid4().hex[:24]}",
                                                name=name))
                    self._buf, self._state = self._buf[m.end():], "args"
                    continue
                if CLOSE in self._buf or len(self._buf) > _MAX_HEAD:
                    content.append(OPEN)  # not a call after all: it was text
                    self._state = "text"
                    continue
                break
            j = self._buf.find(CLOSE)
            if j >= 0:
                body = self._buf[:j].rstrip()
                args = body[:-1].rstrip() if body.endswith("}") else body
                pieces.append(ToolCallDelta(self.calls, args))
                self.calls += 1
                self._buf, self._state = self._buf[j + len(CLOSE):], "text"
                continue
            k = self._buf.rfind("}")
            if k > 0:
                pieces.append(ToolCallDelta(self.calls, self._buf[:k]))
                self._buf = self._buf[k:]
            break
        return "".join(content), [p for p in pieces if p.arguments or p.name]

    def flush(self) -> tuple[str, list[ToolCallDelta]]:
        rest, self._buf = self._buf, ""
        if self._state == "text":
            return rest, []
        if self._state == "head":
            return OPEN + rest, []
        self.calls += 1  # cut off by the token limit: what there is of the arguments
        return "", [ToolCallDelta(self.calls - 1, rest)] if rest else []


def _partial(text: str, marker: str) -> int:
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


class ToolCallStream:
    """An engine stream with tool calls parsed out of its text."""

    def __init__(self, inner: ChatStream) -> None:
        self._inner = inner
        self._parser = ToolCallParser()
        self._logprobs: list[TokenLogprob] = []  # of text held back, sent with what follows

    def __aiter__(self) -> ToolCallStream:
        return self

    async def __anext__(self) -> ChatDelta:
        while True:
            delta = await self._inner.__anext__()
            self._logprobs.extend(delta.logprobs)
            text, pieces = self._parser.feed(delta.text)
            if delta.finish_reason is not None:
                rest, more = self._parser.flush()
                finish = delta.finish_reason
                if self._parser.calls and finish == "stop":
                    finish = "tool_calls"
                return ChatDelta(text + rest, finish, delta.usage, tuple(pieces + more),
                                 self._take())
            if text or pieces:
                return ChatDelta(text, tool_calls=tuple(pieces), logprobs=self._take())

    def _take(self) -> tuple[TokenLogprob, ...]:
        out, self._logprobs = tuple(self._logprobs), []
        return out

    async def aclose(self) -> None:
        await self._inner.aclose()
