"""Training captions: the trigger word plus a class phrase for the main_body.

Every image of a dataset gets the same caption unless a captioning model is configured, in
which case its description of each image follows the trigger word.  The trigger word comes
first so that a prompt naming it calls up what the LoRA learnt.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

# main_body -> the class phrase appended to the trigger word.
CLASS_PHRASES: dict[str, str] = {
    "Style": "style",
    "Human": "person",
    "Architecture": "building",
    "Plants": "plant",
    "Animals": "animal",
}

Captioner = Callable[[Image.Image], str]


def base_caption(trigger_word: str, main_body: str) -> str:
    phrase = CLASS_PHRASES[main_body]
    trigger = " ".join(trigger_word.split())
    return f"{trigger} {phrase}" if trigger else phrase


def captions_for(images: list[Image.Image], trigger_word: str, main_body: str,
                 captioner: Captioner | None = None) -> list[str]:
    caption = base_caption(trigger_word, main_body)
    if captioner is None:
        return [caption] * len(images)
    return [f"{caption}, {captioner(image).strip()}".rstrip(", ") for image in images]
