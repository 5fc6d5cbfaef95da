"""Accuracy of the fusion drawing classifier on the labelled set (docs/api.md, Fusion).

    PYTHONPATH=src python bench/intent_accuracy.py

Reports rules + model (what the server does), the model alone, and how many the rules decided.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ronghe.engines.llm.base import ChatMessage
from ronghe.engines.llm.intent import decide, model_vote, rule_vote
from ronghe.engines.llm.llama_cpp import LlamaCppEngine

DATA = Path(__file__).parent.parent / "tests/engines/llm/data/intent_labelled.tsv"


def labelled() -> list[tuple[bool, str]]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, text = line.split("\t", 1)
            rows.append((label == "1", text))
    return rows


async def main() -> None:
    engine = LlamaCppEngine("smollm2", "bundled:smollm2", n_ctx=2048)
    rows = labelled()
    combined = alone = by_rules = 0
    for label, text in rows:
        decision = await decide([ChatMessage("user", text)], engine)
        combined += decision.draw == label
        alone += (await model_vote(engine, text)) == label
        by_rules += rule_vote(text) is not None
    await engine.aclose()
    n = len(rows)
    print(f"{n} messages ({sum(lab for lab, _ in rows)} drawing requests)")
    print(f"rules + model: {combined}/{n} = {combined / n:.1%}")
    print(f"model alone:   {alone}/{n} = {alone / n:.1%}")
    print(f"decided by rules: {by_rules}/{n}")


if __name__ == "__main__":
    asyncio.run(main())
