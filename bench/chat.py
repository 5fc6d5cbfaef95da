"""Chat speed: raw llama-cpp-python against the same model behind Ronghe's HTTP streaming API.

One run measures, on the same prompts and sampling parameters:

- decode tokens/s and time to first token of raw llama-cpp-python (``Llama.generate`` in
  this process), and of Ronghe's streaming endpoint (a real uvicorn server in a
  subprocess), alternating run by run so a change in machine load hits both alike;
- the ratio of the two (target: >= 0.95), as the median of the per-pair ratios: each raw run
  is paired with the Ronghe run next to it (which goes first alternates), so load that
  drifts during the benchmark moves both halves of a pair alike;
- aggregate tokens/s with 1, 2 and 4 concurrent streams (they queue: one generation at a
  time per model).

Every generation is exactly ``--tokens`` long: the end-of-generation tokens are forbidden
(raw: ignored; Ronghe: ``logit_bias`` -100 through ``/v1/chat/completions``), so both sides
decode the same number of tokens.  The vendor endpoint is timed too, at its natural length.

    python bench/chat.py --tokens 128 --runs 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import llama_cpp

from ronghe.engines.llm.base import ChatMessage
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.text import ChatTemplate

TEMPERATURE, TOP_P = 0.8, 0.7  # the vendor API's defaults


def prompt(i: int) -> list[ChatMessage]:
    # A different ending each run, so no run finds its whole prompt already in a KV cache.
    return [ChatMessage("user", f"Write a long story about a dragon named Ember{i}.")]


@dataclass
class Timing:
    ttft: float  # seconds to the first token
    rate: float  # tokens/s after the first token
    tokens: int


class RawModel:
    def __init__(self, threads: int) -> None:
        path = str(resolve_model_path("bundled:smollm2"))
        self.llm = llama_cpp.Llama(path, n_ctx=8192, n_threads=threads,
                                   n_threads_batch=threads, verbose=False)
        self.template = ChatTemplate(self.llm.metadata["tokenizer.chat_template"])

    def run(self, messages: list[ChatMessage], tokens: int) -> Timing:
        ids = self.llm.tokenize(self.template.render(messages).encode(), add_bos=False,
                                special=True)
        start = time.perf_counter()
        first = last = start
        n = 0
        for token in self.llm.generate(ids, temp=TEMPERATURE, top_p=TOP_P, top_k=0,
                                       min_p=0.0, repeat_penalty=1.0):
            self.llm.detokenize([token])  # as a streaming server must
            last = time.perf_counter()
            if n == 0:
                first = last
            n += 1
            if n == tokens:
                break
        return Timing(first - start, (n - 1) / (last - first), n)


def eog_bias(llm: llama_cpp.Llama) -> dict[str, int]:
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return {str(t): -100 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}


def http_run(url: str, key: str, messages: list[ChatMessage], tokens: int,
             bias: dict[str, int] | None) -> Timing:
    """One streaming request; ``bias`` None means the vendor endpoint at natural length."""
    msgs = [{"role": m.role, "content": m.content} for m in messages]
    if bias is None:
        path = "/nlp/v1/chat/completions"
        body = {"messages": msgs, "temperature": TEMPERATURE, "top_p": TOP_P,
                "max_new_tokens": tokens, "stream": True}
    else:
        path = "/v1/chat/completions"
        body = {"model": "smollm2", "messages": msgs, "temperature": TEMPERATURE,
                "top_p": TOP_P, "max_tokens": tokens, "stream": True, "logit_bias": bias,
                "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = last = 0.0
    completion = 0
    with httpx.stream("POST", url + path, json=body, timeout=600,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            data = event.get("data", event)
            usage = data.get("usage")
            if usage:
                completion = usage["completion_tokens"]
            choices = data.get("choices") or []
            delta = choices[0].get("delta") if choices else None
            text = delta if isinstance(delta, str) else (delta or {}).get("content")
            if text:
                last = time.perf_counter()
                first = first or last
    return Timing(first - start, (completion - 1) / (last - first), completion)


def concurrent(url: str, key: str, streams: int, tokens: int,
               bias: dict[str, int]) -> tuple[float, float]:
    """Aggregate tokens/s and mean time to first token for ``streams`` parallel requests."""
    results: list[Timing] = []

    def one(i: int) -> None:
        results.append(http_run(url, key, prompt(1000 + 10 * streams + i), tokens, bias))

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(r.tokens for r in results) / wall, statistics.mean(r.ttft for r in results)


@contextmanager
def ronghe_server(threads: int) -> Iterator[tuple[str, str]]:
    """Ronghe on uvicorn in a subprocess, so its event loop has its own interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        info = Path(tmp) / "server.json"
        proc = subprocess.Popen([sys.executable, __file__, "--serve", tmp,
                                 "--threads", str(threads)])
        try:
            deadline = time.monotonic() + 120
            while not info.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Ronghe server did not start")
                time.sleep(0.1)
            started = json.loads(info.read_text())
            yield started["url"], started["key"]
        finally:
            proc.terminate()
            proc.wait(30)


def serve(data_dir: str, threads: int) -> None:
    import socket

    import uvicorn

    from ronghe.app import create_app
    from ronghe.settings import Settings

    app = create_app(Settings(data_dir=Path(data_dir) / "data", cpu_threads=threads,
                              log_level="warning"))
    services = app.state.services
    services.auth.add_user("bench@example.com", "bench password 1")
    key = services.auth.create_key("bench@example.com", "bench").secret
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, log_level="warning")
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            time.sleep(0.05)
        tmp = Path(data_dir) / "server.tmp"
        tmp.write_text(json.dumps({"url": url, "key": key}))
        tmp.rename(Path(data_dir) / "server.json")

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.threads)
        return

    print(f"SmolLM2-135M Q4_1, {args.tokens} tokens/run, {args.runs} runs, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    raw = RawModel(args.threads)
    bias = eog_bias(raw.llm)
    with ronghe_server(args.threads) as (url, key):
        raw.run(prompt(-1), 8)  # warm-up: first decode pays one-off costs
        http_run(url, key, prompt(-1), 8, bias)
        raws, https, vendors = [], [], []
        for i in range(args.runs):
            if i % 2:
                https.append(http_run(url, key, prompt(i), args.tokens, bias))
                raws.append(raw.run(prompt(i), args.tokens))
            else:
                raws.append(raw.run(prompt(i), args.tokens))
                https.append(http_run(url, key, prompt(i), args.tokens, bias))
            vendors.append(http_run(url, key, prompt(100 + i), args.tokens, None))
        raw.llm.close()
        scaling = {n: concurrent(url, key, n, args.tokens, bias) for n in (1, 2, 4)}

    def med(timings: list[Timing], attr: str) -> float:
        return statistics.median(getattr(t, attr) for t in timings)

    rows = [("raw llama-cpp-python", raws), ("Ronghe /v1/chat/completions (SSE)", https),
            ("Ronghe /nlp/v1/chat/completions (SSE)", vendors)]
    print(f"{'':40} {'decode tok/s':>12} {'TTFT ms':>9} {'tokens':>7}")
    for name, timings in rows:
        print(f"{name:40} {med(timings, 'rate'):12.1f} {med(timings, 'ttft') * 1000:9.1f} "
              f"{med(timings, 'tokens'):7.0f}")
    ratios = [h.rate / r.rate for h, r in zip(https, raws, strict=True)]
    extra_ttft = [(h.ttft - r.ttft) * 1000 for h, r in zip(https, raws, strict=True)]
    print(f"ratio Ronghe/raw decode tok/s: {statistics.median(ratios):.3f} (target >= 0.95; "
          f"pairs {min(ratios):.3f}-{max(ratios):.3f}); "
          f"TTFT {statistics.median(extra_ttft):+.1f} ms")
    for n, (rate, ttft) in scaling.items():
        print(f"{n} concurrent stream(s): {rate:6.1f} tok/s aggregate, "
              f"mean TTFT {ttft * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
