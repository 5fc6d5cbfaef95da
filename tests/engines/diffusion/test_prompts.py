"""The A1111 prompt grammar, and what reaches the pipeline: text for plain prompts (the same
call as before, so the same pixels), compel's embeddings for weighted and long ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ronghe.engines.diffusion.prompts import (
    Fragment,
    check,
    parse,
    pipeline_arguments,
    unweighted,
)
from ronghe.errors import BadRequest
from tests.conftest import DemoModel
from tools import family_models


@pytest.mark.parametrize(("prompt", "expected"), [
    ("a red circle", [[("a red circle", 1.0)]]),
    ("a (red:1.3) circle", [[("a ", 1.0), ("red", 1.3), (" circle", 1.0)]]),
    ("(red)", [[("red", 1.1)]]),
    ("((red))", [[("red", 1.1 * 1.1)]]),
    ("[red]", [[("red", 1 / 1.1)]]),
    ("(a [b] c:1.5)", [[("a ", 1.5), ("b", 1.5 / 1.1), (" c", 1.5)]]),
    (r"\(not weighted\) \[nor\] \\", [[(r"(not weighted) [nor] \ ".rstrip(), 1.0)]]),
    ("(unclosed", [[("unclosed", 1.1)]]),
    ("stray) and ] and a:b", [[("stray) and ] and a:b", 1.0)]]),
    ("one BREAK two", [[("one", 1.0)], [("two", 1.0)]]),
    ("(a BREAK b)", [[("a", 1.1)], [("b", 1.1)]]),
    ("a (red:1.0) circle", [[("a red circle", 1.0)]]),
    ("C++ and word++", [[("C++ and word++", 1.0)]]),  # compel's own syntax stays text
])
def test_the_grammar(prompt: str, expected: list[list[tuple[str, float]]]) -> None:
    got = [[(f.text, round(f.weight, 6)) for f in seg] for seg in parse(prompt)]
    assert got == [[(t, round(w, 6)) for t, w in seg] for seg in expected]


def test_unweighted_text_and_checks() -> None:
    assert unweighted(parse("a (b:1) c")) == "a b c"
    assert unweighted(parse("a (b) c")) is None and unweighted(parse("a BREAK b")) is None
    assert parse("") == [[]] and unweighted(parse("")) == ""
    check("a (red:10) circle", "prompt", "sd15")
    with pytest.raises(BadRequest, match=r"^prompt: a weight must be 0-10"):
        check("((((red:9))))", "prompt", "sdxl")
    with pytest.raises(BadRequest, match=r"^neg_prompt: weights like \(word:1.3\)"):
        check("a BREAK b", "neg_prompt", "flux")
    check("a fox (in the snow)", "prompt", "flux")  # plain parentheses are text there
    assert Fragment("x").weight == 1.0


def _demo(demo_model: DemoModel) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(demo_model.path), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _draw(pipe: Any, **prompt: Any) -> np.ndarray:
    torch.manual_seed(0)
    with torch.inference_mode():
        return pipe(num_inference_steps=3, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(3), **prompt).images


def test_a_plain_prompt_reaches_the_pipeline_as_before(demo_model: DemoModel,
                                                       one_thread: None) -> None:
    pipe = _demo(demo_model)
    before = _draw(pipe, prompt="a red circle on a blue background", negative_prompt="green")
    args = pipeline_arguments(pipe, "demo", "a red circle on a blue background", "green")
    assert args == {"prompt": "a red circle on a blue background", "negative_prompt": "green"}
    assert np.array_equal(before, _draw(pipe, **args))  # bit-identical
    one = pipeline_arguments(pipe, "demo", "a (red:1.0) circle on a blue background", "")
    assert one == {"prompt": "a red circle on a blue background"}
    weighted = pipeline_arguments(pipe, "demo", "a (red:1.4) circle", "(green:1.0)")
    assert set(weighted) == {"prompt_embeds", "negative_prompt_embeds"}
    assert not np.array_equal(before, _draw(pipe, **weighted))


def test_the_window_edge_decides_between_text_and_chunks(demo_model: DemoModel,
                                                         one_thread: None) -> None:
    pipe = _demo(demo_model)  # a CLIP tokenizer of 32-token windows (SD's are 77)
    window = pipe.tokenizer.model_max_length
    words = ["red", "blue", "green", "yellow"]
    fits = " ".join(words[i % 4] for i in range(window - 2))  # + BOS + EOS
    assert len(pipe.tokenizer(fits).input_ids) == window
    assert pipeline_arguments(pipe, "demo", fits, "") == {"prompt": fits}
    longer = fits + " red"
    args = pipeline_arguments(pipe, "demo", longer, "")
    assert args["prompt_embeds"].shape[:2] == (1, 2 * window)
    assert args["negative_prompt_embeds"].shape == args["prompt_embeds"].shape
    # The second window is the prompt's tail, not padding: a different tail, other embeds.
    other = pipeline_arguments(pipe, "demo", fits + " green", "")
    assert not torch.equal(args["prompt_embeds"][:, window:], other["prompt_embeds"][:, window:])
    _draw(pipe, **args)  # the pipeline takes them


def test_sdxl_weights_both_encoders_and_pools(one_thread: None) -> None:
    pipe = family_models.build("sdxl")
    assert pipeline_arguments(pipe, "sdxl", "a cat", "") == {"prompt": "a cat"}
    args = pipeline_arguments(pipe, "sdxl", "a (cat:1.4) BREAK on a mat", "dog")
    dims = pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert args["prompt_embeds"].shape == (1, 154, dims)
    assert args["negative_prompt_embeds"].shape == (1, 154, dims)
    assert args["pooled_prompt_embeds"].shape == (1, pipe.text_encoder_2.config.projection_dim)
    # An empty negative prompt is zeros, as SDXL's pipeline makes it (force_zeros_...).
    empty = pipeline_arguments(pipe, "sdxl", "a (cat:1.4)", "")
    assert not empty["negative_prompt_embeds"].any()
    assert not empty["negative_pooled_prompt_embeds"].any()
    image = pipe(num_inference_steps=2, height=64, width=64, output_type="np", **args).images
    assert image.shape == (1, 64, 64, 3)


def test_text_families_get_the_prompt_as_written() -> None:
    class NoClip:
        text_encoder = None

    assert pipeline_arguments(NoClip(), "flux", "a (fox) BREAK", "") == {
        "prompt": "a (fox) BREAK"}
