"""What a client asks to train, in ``train_submit``'s terms: the input of
``ronghe.training.service``.  Plain data, so a front door's protocol can build it without
importing the services."""

from __future__ import annotations

from dataclasses import dataclass

# base_model's "pick for me" (the vendor's form shows it first); "auto" means the same.
AUTO_BASE_MODEL = "自动选择"


@dataclass(frozen=True)
class TrainRequest:
    """What a client asks to train, in ``train_submit``'s terms; ranges are the front
    door's to check, the rest is ``Training.submit``'s."""

    name: str
    dataset: tuple[int, ...]
    description: str = ""
    base_model: str = AUTO_BASE_MODEL
    trigger_word: str = ""
    main_body: str = "Style"
    nsfw: bool = False
    # Overrides of the main_body preset; None keeps the preset's.
    steps: int | None = None
    rank: int | None = None
    learning_rate: float | None = None
    # Side of the square training images (and of the buckets' area); a multiple of 16.
    resolution: int | None = None
    # None: a random seed.
    seed: int | None = None
    webhook: str = ""
    callback_url: str = ""
    webhook_events_filter: tuple[str, ...] | None = None
    sample_prompts: tuple[str, ...] = ()
