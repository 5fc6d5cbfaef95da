"""Does a chat turn ask for a picture?  Rules in Chinese and English, the chat model breaking ties.

The bundled 135M model alone is no better than a coin at this (it says "no" to "draw a cat on
a sofa" and "yes" to "图片格式有哪些？"), so the decision is made by patterns where they speak:
a drawing verb aimed at something ("画一只猫", "draw a …", "make me a picture of …", "帮我生成
一张…的图片") says yes; a question *about* pictures ("what is a picture element?",
"图片格式有哪些？") says no.  Only a message neither kind of pattern matches goes to the model,
as a one-token answer constrained by a llama.cpp grammar to ``yes`` or ``no``.

A follow-up ("now make it blue", "改成蓝色") right after a drawing turn draws again: the new
prompt is the previous drawing's prompt followed by the change.  A drawing turn is recognised
by its answer: an assistant message that is only a picture URL.

The patterns read the first ``RULES_MAX_CHARS`` characters of a message (a drawing request
says what to draw up front, and an image prompt is at most 2000 characters anyway), and run
in a worker thread: a conversation of long messages costs regex time in proportion to its
length, which must not stall the event loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio

from ronghe.engines.llm.base import ChatEngine, ChatMessage, GenerationParams, collect

YES_NO = 'root ::= "yes" | "no"'
SYSTEM_PROMPT = ("Decide whether the user's message asks you to draw, paint or generate a "
                 "picture. Answer yes or no.")

_EN_OBJECT = (r"(?:picture|image|drawing|painting|illustration|photo|sketch|portrait|"
              r"wallpaper|logo|icon|poster)s?")
_EN_POLITE = (r"(?:please\s+|pls\s+|kindly\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?|"
              r"i\s+(?:want|need|would like|'d like)\s+you\s+to\s+|help\s+me\s+|let'?s\s+)?")
_EN_DRAW = re.compile(
    rf"^\s*(?:hey[,!]?\s+|hi[,!]?\s+|ok[,!]?\s+)?{_EN_POLITE}"
    r"(?:draw|paint|sketch|illustrate|doodle|render)\b", re.I)
_EN_MAKE = re.compile(
    rf"\b(?:make|create|generate|give|produce|design|show|render|paint|draw)\s+(?:me\s+|us\s+)?"
    rf"(?:a|an|one|some|two|three|\d+)?\s*(?:\w+\s+){{0,3}}?{_EN_OBJECT}\s+(?:of|with|showing|where|in)\b",
    re.I)
_EN_WANT = re.compile(
    rf"\b(?:i(?:\s+(?:want|need|would like)|'d like)|can i (?:get|have)|may i have)\s+"
    rf"(?:a|an|some)?\s*(?:\w+\s+){{0,2}}?{_EN_OBJECT}\s+of\b", re.I)
_EN_QUESTION = re.compile(
    r"^\s*(?:what|why|how|when|where|who|which|whose|is|are|was|were|does|do|did|explain|define|"
    r"tell me (?:about|what|why|how)|describe|translate|summari[sz]e|list|compare)\b", re.I)

_ZH_DRAW = re.compile(
    r"(?:^|请|帮我|给我|替我|为我|你|能|可以|想|要|来|再)\s*(?:帮我|给我)?\s*"
    r"(?:画|绘制|绘|生成|创作|制作|做|设计|来|出)\s*(?:一|两|三|几|[0-9]+)?\s*"
    r"(?:张|幅|只|个|条|朵|匹|头|座|片|位|辆|棵|副|份)?")
_ZH_IMAGE = re.compile(r"(?:图|图片|图像|画|画作|照片|插画|插图|壁纸|头像|海报|"
                       r"素描|油画|水彩|漫画)")
_ZH_DRAW_VERB = re.compile(r"(?:画|绘制|绘)")
_ZH_MAKE_VERB = re.compile(r"(?:生成|创作|制作|做|设计|来|出)")
_ZH_QUESTION = re.compile(
    r"(?:什么|谁|哪国|哪|为什么|为何|怎么|怎样|如何|哪些|哪个|哪里|多少|是否|有没有|区别|原理|意思|解释|介绍|吗[？?。]?$|呢[？?]?$)")
_ZH_WANT = re.compile(r"(?:我想要|我要|想要|来)\s*(?:一|两|几)?\s*(?:张|幅)")
_TEXT_EN = re.compile(
    r"^\s*(?:please\s+)?(?:(?:can|could) you\s+)?(?:write|tell|translate|summari[sz]e|recommend|"
    r"suggest|calculate|compute|list|plan|(?:make|create|generate|give)\s+(?:me\s+)?(?:a|an|some|"
    r"three|ten|\d+)?\s*(?:\w+\s+)?(?:list|plan|schedule|poem|story|joke|email|essay|"
    r"function|code|names|tips|ideas|summary))\b", re.I)
_TEXT_ZH = re.compile(r"^\s*(?:请|帮我|给我|麻烦)?\s*(?:帮我|给我)?\s*"
                      r"(?:写|讲|算|推荐|翻译|总结|计算|告诉我)")
_ZH_DRAW_Q = re.compile(r"(?:能|可以|会)(?:不能|不可以)?(?:帮我|给我)?(?:画|生成)")

_FOLLOW_EN = re.compile(
    r"^\s*(?:(?:now|ok|okay|and|then|but|great|nice|cool)[,!.]?\s+)*"
    r"(?:make\s+(?:it|them|the\s+\w+)|change\s+(?:it|them|the\s+\w+)(?:\s+to)?|turn\s+(?:it|them)|"
    r"(?:do\s+it|same|again|this time)\b|instead|try again|another one|one more|add|remove|"
    r"without|with)\b", re.I)
_FOLLOW_ZH = re.compile(r"(?:改成|换成|变成|改为|换为|换个|换一|再画|再来|重新|加上|加个|加一|去掉|"
                        r"把它|让它|改一下|换一下|不要|背景|颜色|更)")

_LEAD_EN = re.compile(
    rf"^\s*(?:hey[,!]?\s+|hi[,!]?\s+|ok[,!]?\s+)?{_EN_POLITE}"
    r"(?:draw|paint|sketch|illustrate|doodle|render|make|create|generate|give|produce|design|"
    r"show|i(?:\s+(?:want|need|would like)|'d like)|can i (?:get|have)|may i have)\s+"
    r"(?:me\s+|us\s+)?"
    rf"(?:(?:a|an|one|some)\s+(?:\w+\s+){{0,2}}?{_EN_OBJECT}\s+(?:of|with|showing)\s+)?", re.I)
_LEAD_ZH = re.compile(
    r"^\s*(?:请你?|麻烦你?|你能不能|你可以|能不能|可以|我想要|我想|我要|帮忙)?\s*(?:帮我|给我|替我|为我)?\s*"
    r"(?:画|绘制|生成|创作|制作|做|设计|来)\s*(?:出|一下)?\s*(?:(?:一|[0-9]+)?\s*(?:张|幅))?"
    r"\s*(?:画|图片|图)?\s*[，,：:]?\s*(?:内容是|内容为)?")
_TAIL_ZH = re.compile(r"(?:的)?(?:图片|图像|图|画作|照片|插画|插图|壁纸|海报)?\s*"
                      r"(?:吧|吗|呢|好吗|可以吗|谢谢)?[。！!？?.\s]*$")
_FOLLOW_LEAD_EN = re.compile(
    r"^\s*(?:(?:now|ok|okay|and|then|but|great|nice|cool)[,!.]?\s+)*"
    r"(?:make\s+(?:it|them)|change\s+(?:it|them)(?:\s+to)?|turn\s+(?:it|them)(?:\s+into)?|"
    r"(?:please\s+)?(?:make|change))?\s*", re.I)
_FOLLOW_LEAD_ZH = re.compile(r"^\s*(?:那|现在|好的?[，,]?|再)?\s*(?:把它|让它|把)?\s*"
                             r"(?:改成|换成|变成|改为|换为)?")

PICTURE_URL = re.compile(r"^\s*https?://\S+\s*$")
# What of a message the patterns read: any drawing request fits, and each pattern's cost is
# bounded whatever the message's length.
RULES_MAX_CHARS = 4000


def _head(text: str) -> str:
    return text[:RULES_MAX_CHARS]


@dataclass(frozen=True)
class Decision:
    draw: bool
    # The image prompt when drawing: the subject and details, without "please draw".
    prompt: str
    # Who decided: "rules", "model" or "follow-up" (recorded in logs and the accuracy bench).
    by: str


def rule_vote(text: str) -> bool | None:
    """True / False where a pattern decides, None where the model must."""
    if _EN_DRAW.search(text) or _EN_MAKE.search(text) or _EN_WANT.search(text):
        return True
    if _ZH_DRAW_Q.search(text):
        return True
    if _ZH_WANT.search(text) and _ZH_IMAGE.search(text):
        return True
    if _TEXT_EN.search(text) or _TEXT_ZH.search(text):
        return False
    zh = _ZH_DRAW.search(text)
    if zh and zh.group(0):
        verb = zh.group(0)
        # 画家, 画面 … are nouns; a question with 画一只 … is still a request ("能画一只猫吗")
        noun = re.search(r"画(?:家|面|质|展|廊|风|布|册|法)", text)
        asked = not _ZH_QUESTION.search(text) or re.search(r"画(?:一|个|张|幅|只)", text)
        if _ZH_DRAW_VERB.search(verb) and not noun and asked:
            return True
        if _ZH_MAKE_VERB.search(verb) and _ZH_IMAGE.search(text[zh.end():]) \
                and not _ZH_QUESTION.search(text):
            return True
    if _EN_QUESTION.search(text) or _ZH_QUESTION.search(text):
        return False
    return None


def extract_prompt(text: str) -> str:
    """'please draw a cat on a sofa' -> 'a cat on a sofa'; '帮我生成一张猫的图片' -> '猫'."""
    out = _LEAD_EN.sub("", text, count=1)
    out = _LEAD_ZH.sub("", out, count=1)
    out = re.sub(r"^\s*(?:我想要|我要|想要|来)\s*(?:一|两)?\s*(?:张|幅)", "", out, count=1)
    out = _TAIL_ZH.sub("", out, count=1)
    out = re.sub(r"[\s,.!?。！？]*(?:please|pls|thanks|thank you)?[\s,.!?。！？]*$", "", out,
                 flags=re.I)
    out = out.strip()
    if re.match(r"^(?:个|只|张|幅|条|朵|匹|头|座|位|辆|棵)", out):
        out = "一" + out  # '画个苹果' -> '一个苹果', not '个苹果'
    return out or text.strip()


def follow_up_change(text: str) -> str:
    """'now make it blue' -> 'blue'; '把它改成蓝色' -> '蓝色'."""
    out = _FOLLOW_LEAD_EN.sub("", text, count=1)
    out = _FOLLOW_LEAD_ZH.sub("", out, count=1)
    out = re.sub(r"[\s,.!?。！？]*(?:please|pls)?[\s,.!?。！？吧]*$", "", out, flags=re.I)
    return out.strip() or text.strip()


def is_follow_up(text: str) -> bool:
    return bool(_FOLLOW_EN.search(text) or _FOLLOW_ZH.search(text))


def previous_drawing(messages: list[ChatMessage]) -> str | None:
    """The prompt of the latest drawing turn before the last message, or None.

    Walked from the start so a chain of follow-ups accumulates: cat -> cat, blue -> …"""
    current: str | None = None
    for i in range(len(messages) - 1):
        reply = messages[i + 1]
        if messages[i].role != "user" or reply.role != "assistant" \
                or not PICTURE_URL.match(reply.content):
            continue
        text = _head(messages[i].content)
        if current is not None and i >= 2 and messages[i - 1].role == "assistant" \
                and PICTURE_URL.match(messages[i - 1].content) and rule_vote(text) is not True:
            current = f"{current}, {follow_up_change(text)}"
        else:
            current = extract_prompt(text)
    return current


async def model_vote(engine: ChatEngine, text: str) -> bool:
    params = GenerationParams(
        messages=[ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", text[:2000])],
        temperature=0.0, max_new_tokens=2, grammar=YES_NO)
    result = await collect(await engine.start(params))
    return result.text.strip().lower().startswith("y")


def rules_decide(messages: list[ChatMessage]) -> Decision | None:
    """The decision the patterns make (a follow-up, or a rule that speaks), else None."""
    text = _head(messages[-1].content)
    before = messages[:-1]
    if before and before[-1].role == "assistant" and PICTURE_URL.match(before[-1].content):
        earlier = previous_drawing(messages)
        if earlier is not None and rule_vote(text) is not True and is_follow_up(text):
            return Decision(True, f"{earlier}, {follow_up_change(text)}", "follow-up")
    vote = rule_vote(text)
    if vote is not None:
        return Decision(vote, extract_prompt(text) if vote else "", "rules")
    return None


async def decide(messages: list[ChatMessage], engine: ChatEngine | None) -> Decision:
    """Whether the last (user) message asks for a picture, and the prompt to draw."""
    ruled = await anyio.to_thread.run_sync(rules_decide, messages)
    if ruled is not None:
        return ruled
    if engine is None:
        return Decision(False, "", "rules")
    text = _head(messages[-1].content)
    draw = await model_vote(engine, text)
    return Decision(draw, extract_prompt(text) if draw else "", "model")
