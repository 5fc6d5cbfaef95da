"""The demo captioner's parts, all stock transformers classes.

A ``VisionEncoderDecoderModel`` (the architecture of TrOCR and Donut): a tiny ``HieraModel``
encoder (48 x 48 input, a 7 x 7 convolutional stem at stride 2, four stages 24x24 -> 12x12
-> 6x6 -> 3x3) and a tiny ``GPT2LMHeadModel`` decoder with cross-attention,
a word-level ``PreTrainedTokenizerFast`` and a ``ViTImageProcessor``, bundled as a
``TrOCRProcessor`` (the processor class of vision-encoder-decoder captioners).  Saved
together they are a folder ``AutoProcessor`` and ``AutoModelForImageTextToText`` load, like
BLIP, GIT or Florence-2 (``ronghe.engines.captioning``).
"""

from __future__ import annotations

from pathlib import Path

from tools.demo_models.captioning import data

IMAGE_SIZE = 48
# The encoder's convolutional stem (kernel side, stride 2), first width and stage depths;
# the last stage is WIDTH * 2 ** 3 = 128 wide, projected to the decoder's HIDDEN.
STEM = 7
WIDTH = 16
DEPTHS = (1, 2, 2, 1)
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
        HieraConfig,
        HieraModel,
        VisionEncoderDecoderModel,
    )

    # Hiera (a hierarchical ViT whose config sets the ``hidden_size`` VisionEncoderDecoder
    # reads) with an overlapping convolutional stem: a STEM x STEM kernel at stride 2, so
    # every token sees all of its neighbourhood and an edge between any two colours is found
    # at every alignment.  Swin and ViT (non-overlapping linear patch embeddings) stayed at
    # chance on the shape for over 1,000 steps, even with the aux loss of build.py; with this
    # stem, the aux loss and the greyscale curriculum the shape is right on 82-90 % of
    # held-out pictures by steps 1,000-1,200 (a 3x3 stem: 55 %, 5x5: 69 %; see
    # docs/demo-model.md).  24x24 tokens -> 12 -> 6 -> 3 by query pooling, the first two
    # stages attending within 8x8 mask units.  No drop-path: nothing here overfits (every
    # batch is new), and a forward pass without randomness keeps the build reproducible
    # from its seed alone.
    encoder = HieraModel(HieraConfig(
        embed_dim=WIDTH, image_size=[IMAGE_SIZE, IMAGE_SIZE], patch_size=[STEM, STEM],
        patch_stride=[2, 2], patch_padding=[STEM // 2, STEM // 2], mlp_ratio=2.0,
        depths=list(DEPTHS), num_heads=[1, 2, 4, 8], num_query_pool=len(DEPTHS) - 1,
        query_stride=[2, 2], masked_unit_size=[8, 8],
        masked_unit_attention=[True, True, False, False], drop_path_rate=0.0))
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
