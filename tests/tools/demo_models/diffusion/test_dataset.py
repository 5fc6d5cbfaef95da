"""Dataset split, tokenizer and the hand-set identity VAE."""

from __future__ import annotations

import numpy as np
import torch

from tools.demo_models.diffusion import modules, shapes
from tools.demo_models.diffusion.tokenizer import build_tokenizer


def test_held_out_combos_are_unseen_but_their_words_are_seen() -> None:
    train = set(shapes.train_combos())
    held = shapes.held_out_combos()
    assert not train & set(held)
    assert len(train) + len(held) == len(shapes.all_combos())
    for combo in held:
        assert any(c.colour == combo.colour and c.shape == combo.shape for c in train)
        assert any(c.colour == combo.colour and c.background == combo.background for c in train)
        assert any(c.shape == combo.shape and c.background == combo.background for c in train)


def test_batches_are_reproducible_from_a_seed() -> None:
    a = shapes.sample_batch(np.random.default_rng([1, 2]), 4)
    b = shapes.sample_batch(np.random.default_rng([1, 2]), 4)
    assert a[2] == b[2]
    for x, y in zip(a[0], b[0], strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_every_vocabulary_word_is_one_token() -> None:
    tokenizer = build_tokenizer()
    for word in shapes.vocabulary():
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    ids = tokenizer("a red circle on a blue background").input_ids
    assert len(ids) == 9  # bos + 7 words + eos
    # An unknown word falls back to letters, not <unk>.
    assert tokenizer.tokenize("zebra") == ["z", "e", "b", "r", "a</w>"]


def test_identity_vae_round_trip_is_below_one_8bit_step() -> None:
    vae = modules.make_identity_vae()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[0] = 1.0
    x[1] = -1.0
    with torch.no_grad():
        latents = vae.encode(x).latent_dist.sample(torch.Generator().manual_seed(1))
        decoded = vae.decode(latents).sample
    assert (decoded - x).abs().max() * 127.5 < 0.05


def test_varied_captions_keep_their_words_and_fit_the_text_encoder() -> None:
    tokenizer = build_tokenizer()
    known = set(shapes.vocabulary())
    rng = np.random.default_rng(4)
    forms = set()
    for _ in range(400):
        combo = shapes.train_combos()[int(rng.integers(0, len(shapes.train_combos())))]
        text = shapes.varied_caption(combo, rng)
        words = text.replace(",", " ").split()
        # The shape is always named; colours only as themselves, never inside a filler.
        assert combo.shape in words, text
        assert {w for w in words if w in known} <= {*combo.caption.split(), *shapes.FILLER_WORDS}
        assert len(tokenizer(text).input_ids) <= tokenizer.model_max_length, text
        forms.add((combo.colour in words, f"{combo.background} background" in text,
                   len(words) - len(combo.caption.split())))
    # Every form turns up: no shape colour, no background, one or two extra words.
    assert (False, True, 0) in forms and (True, False, -3) in forms and (True, True, 2) in forms


def test_made_up_words_never_hide_a_vocabulary_word() -> None:
    rng = np.random.default_rng(0)
    long_words = [w for w in shapes.vocabulary() if len(w) > 2]
    for _ in range(2000):
        word = shapes.random_word(rng)
        assert 3 <= len(word) <= 8 and word.isalpha()
        assert not any(known in word for known in long_words), word
