"""The demo captioner's parts, all stock transformers classes.

A ``VisionEncoderDecoderModel`` (the architecture of TrOCR and Donut): a tiny ``SwinModel``
encoder (48 x 48 input, 2-pixel patches, four stages 24x24 -> 12x12 -> 6x6 -> 3x3 with 3x3
attention windows) and a tiny ``GPT2LMHeadModel`` decoder with cross-attention,
a word-level ``PreTrainedTokenizerFast`` and a ``ViTImageProcessor``, bundled as a
``TrOCRProcessor`` (the processor class of vision-encoder-decoder captioners).  Saved
together they are a folder ``AutoProcessor`` and ``AutoModelForImageTextToText`` load, like
BLIP, GIT or Florence-2 (``ronghe.engines.captioning``).
"""

from __future__ import annotations

from pathlib import Path

from ronghe.engines.captioning.demo import data

IMAGE_SIZE = 48
PATCH = 2
# The decoder's width; the encoder's last stage is 16 * 2 ** 3 = 128 wide (projected to it).
HIDDEN = 64
MAX_TOKENS = 12


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(data.vocabulary())}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # WordPiece's decoder joins tokens with spaces (no "##" pieces here to merge).
    core.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>",
                                   model_max_length=MAX_TOKENS)


def build_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(do_resize=True, size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                             resample=2, do_rescale=True, do_normalize=True,
                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def build_model(tokenizer):
    from transformers import (
        GenerationConfig,
        GPT2Config,
        GPT2LMHeadModel,
        SwinConfig,
        SwinModel,
        VisionEncoderDecoderModel,
    )

    # Swin with 2-pixel patches.  A ViT this small, trained from scratch, had learnt the
    # colours by step 400 and was still at chance on the shape at step 1,030; Swin with
    # 4-pixel patches was still at chance at step 1,620.  A linear patch embedding cannot
    # tell which pixels of a two-coloured patch are the shape for every colour pair; with
    # 2-pixel patches most tokens are one plain colour, and windowed attention (3x3 tokens,
    # shifted every other layer) compares neighbours, which finds edges and corners
    # whatever the colours.  No dropout or drop-path: nothing here overfits (every batch is
    # new), and a forward pass without randomness keeps the build reproducible from its
    # seed alone.
    encoder = SwinModel(SwinConfig(
        image_size=IMAGE_SIZE, patch_size=PATCH, embed_dim=16, depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8], window_size=3, mlp_ratio=2.0, drop_path_rate=0.0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    decoder = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=MAX_TOKENS + 4, n_embd=HIDDEN, n_layer=2,
        n_head=4, n_inner=HIDDEN * 2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        add_cross_attention=True, is_decoder=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = tokenizer.bos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.vocab_size = len(tokenizer)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.bos_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=MAX_TOKENS, do_sample=False, num_beams=1)
    return model


def save(folder: Path, model, tokenizer, image_processor) -> None:
    from transformers import TrOCRProcessor

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
