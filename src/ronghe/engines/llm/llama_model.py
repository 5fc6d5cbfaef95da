"""A GGUF model and one llama.cpp context with a sequence per parallel slot.

llama-cpp-python's ``Llama`` class drives a single sequence; parallel slots need the
low-level API (``llama_init_from_model`` with ``n_seq_max``, ``llama_batch_init``,
``llama_decode``, ``llama_memory_seq_rm``), so the model and context are built here.

The KV cache is not unified (``kv_unified = false``): llama.cpp then gives every sequence its
own stream of ``n_ctx`` cells, so a long conversation in one slot can never take cells from
another, and a request that fits its slot always fits.  The context holds
``n_ctx × parallel`` cells in all.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import llama_cpp._logger
import numpy as np
import structlog

from ronghe.engines.llm.text import CHATML, ChatTemplate

log = structlog.get_logger(__name__)

_META_BUF = 1 << 16  # chat templates run to a few KB; 64 KB leaves room


class LoadedModel:
    def __init__(self, path: Path, *, n_ctx: int, parallel: int, n_batch: int,
                 threads: int) -> None:
        # What Llama(verbose=False) does: llama.cpp's own log only for errors.
        llama_cpp._logger.set_verbose(False)
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ValueError(f"llama.cpp could not load {path}")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        # A context beyond what the model was trained on only produces garbage.
        per_seq = min(n_ctx, llama_cpp.llama_model_n_ctx_train(model))
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = per_seq * parallel
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = parallel
        cparams.kv_unified = False
        # Without flash attention the logits of a token do not depend on how its prompt was
        # split into batches, so a prompt read partly from a slot's cache (a reused or
        # copied prefix) gives exactly the text the whole prompt evaluated at once does.
        # With it (llama.cpp's default, "auto") they moved by up to 0.9 here, enough to flip
        # a near-tie and change a seeded or greedy answer with what ran before it.  It costs
        # nothing measurable on this CPU, and reading a short prompt over a long cached one
        # is faster without it (docs/benchmarks.md).
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ValueError(f"llama.cpp could not create a context of {cparams.n_ctx} tokens")
        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.parallel = parallel
        self.n_batch = n_batch
        # llama.cpp may round the context; what each sequence really has is what counts.
        self.n_ctx_seq = min(per_seq, llama_cpp.llama_n_ctx_seq(ctx))
        self._threads = threads
        self._piece_buf = ctypes.create_string_buffer(64)
        # Per-token lookups the decode loop makes for every sequence every step, kept out of
        # ctypes: each foreign call releases and retakes the GIL, which the event loop's
        # thread holds often while it streams.
        self._pieces: dict[int, bytes] = {}
        self._shown: dict[int, bytes] = {}
        self._eog = frozenset(t for t in range(self.n_vocab)
                              if llama_cpp.llama_vocab_is_eog(self.vocab, t))
        source = self.metadata("tokenizer.chat_template")
        if not source:
            log.warning("GGUF has no chat template; using ChatML", path=str(path))
        self.bos_text = self.token_text(llama_cpp.llama_vocab_bos(self.vocab))
        self.template = ChatTemplate(source or CHATML, bos_token=self.bos_text,
                                     eos_token=self.token_text(
                                         llama_cpp.llama_vocab_eos(self.vocab)))

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(_META_BUF)
        n = llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buf, _META_BUF)
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def tokenize(self, text: str) -> list[int]:
        # Templates that write the BOS text themselves must not get a second BOS token.
        add_bos = not (self.bos_text and text.startswith(self.bos_text))
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            out = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), out, size, add_bos, True)
            if n >= 0:
                return list(out[:n])
            size = -n  # the buffer was too small: -n is the count it needs

    def text_piece(self, token: int) -> bytes:
        """The bytes a generated token stands for (cached)."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.piece(token)
        return piece

    def shown_piece(self, token: int) -> bytes:
        """A token's bytes as logprobs show it: special tokens by name (``<|im_end|>``)."""
        piece = self._shown.get(token)
        if piece is None:
            piece = self._shown[token] = self.piece(token, special=True)
        return piece

    def logits(self, index: int) -> np.ndarray:
        """The logits of batch index ``index`` of the last decode (a view, valid until the
        next one)."""
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, index),
                                     shape=(self.n_vocab,))

    def piece(self, token: int, special: bool = False) -> bytes:
        n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf,
                                           len(self._piece_buf), 0, special)
        if n < 0:  # the piece is longer than the buffer: -n is the size it needs
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf,
                                               len(self._piece_buf), 0, special)
        return self._piece_buf.raw[:n]

    def token_text(self, token: int) -> str:
        return "" if token < 0 else self.piece(token, special=True).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def set_threads(self, threads: int) -> None:
        if threads != self._threads:
            llama_cpp.llama_set_n_threads(self.ctx, threads, threads)
            self._threads = threads

    def copy(self, src: int, dst: int) -> None:
        """Gives sequence ``dst`` a copy of every cell of ``src`` (what ``dst`` held is
        dropped).  Across non-unified streams llama.cpp copies only whole streams, and it
        does so at the start of the next decode, before that decode writes anything."""
        llama_cpp.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def forget(self, seq: int, keep: int) -> int:
        """Drops sequence ``seq``'s cells from position ``keep`` on; returns what is kept."""
        if keep > 0 and llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, -1):
            return keep
        llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)  # a whole sequence never fails
        return 0

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None
