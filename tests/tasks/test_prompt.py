"""add_prompt's text handling: the chat model's details are cleaned and follow the prompt."""

from __future__ import annotations

from ronghe.tasks.prompt import clean, enrich


def test_details_are_cleaned_and_follow_the_prompt() -> None:
    assert clean('Details: "soft light, flat colours, centred."\nMore text') == \
        "soft light, flat colours, centred"
    assert len(clean("word " * 100).split()) == 30
    assert enrich("a red circle", "soft light") == "a red circle, soft light"
    assert enrich("a red circle", "A red circle, soft light") == "a red circle, soft light"
    assert enrich("a red circle.", "") == "a red circle."
