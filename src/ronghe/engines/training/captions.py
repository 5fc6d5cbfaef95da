"""Training captions: the trigger word plus a class phrase, then what the image shows.

Every image's caption is ``<trigger word> <class word>, <description>``: the description is
the user's own caption of the image when there is one (a ``.txt`` uploaded beside it, or the
``captions`` field of ``dataset`` / ``add_images``), else the captioner's.  Describing each
image keeps the words of a prompt meaning what they meant to the base model (a LoRA trained
on ``plumzq style`` alone learns that the whole picture, background included, is what
``plumzq`` means); the trigger word comes first so a prompt naming it calls up the concept.
A user caption that already names the trigger word is used as it is.
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


def training_caption(trigger_word: str, main_body: str, description: str | None,
                     user_written: bool = False) -> str:
    base = base_caption(trigger_word, main_body)
    text = " ".join((description or "").split()).strip(" ,")
    if not text:
        return base
    trigger = " ".join(trigger_word.split()).lower()
    if user_written and trigger and trigger in text.lower():
        return text
    return f"{base}, {text}"


def captions_for(images: list[Image.Image], trigger_word: str, main_body: str,
                 captioner: Captioner | None = None) -> list[str]:
    if captioner is None:
        return [base_caption(trigger_word, main_body)] * len(images)
    return [training_caption(trigger_word, main_body, captioner(image)) for image in images]
