"""Chat speed: raw llama.cpp against the same model behind Ronghe's HTTP streaming API.

One run measures, on the same model, prompts, token counts and sampling (temperature 0.8,
top-p 0.7, end-of-generation forbidden so every generation is exactly ``--tokens`` long) and
the same context settings (4,096 cells per sequence, flash attention off, as Ronghe runs):

- raw llama.cpp, one sequence: ``llama_decode`` of one token per step in this process;
- raw llama.cpp, 4 sequences batched in one context (one ``llama_decode`` per step with the
  next token of each): the upper bound on aggregate tokens/s for this CPU;
- Ronghe (a real uvicorn server in a subprocess, ``/v1/chat/completions`` streaming, with a
  ``logit_bias`` that forbids end-of-generation) with 1, 2, 4 and 8 concurrent streams:
  aggregate tokens/s, time to first token p50/max, inter-token latency p50/p99;
- the ratios Ronghe/raw for 1 stream and for 4 streams, each the median of per-pair ratios
  (raw and Ronghe runs alternate, which goes first alternates too), so load that drifts
  during the run moves both halves of a pair alike;
- the batching gain of each side, 4 streams' aggregate / 1 stream's (raw 4 ÷ raw 1 beside
  Ronghe 4 ÷ Ronghe 1, medians of rounds) and Ronghe's gain as a share of raw's: a raw gain
  near 1 says this CPU hardly rewards batching, and then the 4-stream ratio says little;
- prompt-prefix reuse: time to first token of turn 2 of a ~1,500-token conversation, cold
  (nothing cached) and warm (turn 1 just ran, its slot still holds the conversation);
- CPU time per generated token: of the benchmark's process during raw runs, of the server's
  process during Ronghe runs.  Unlike wall time it hardly depends on what else the machine
  runs, so it shows what Ronghe itself costs on top of llama.cpp when the box is busy.

    python bench/chat.py --tokens 64 --rounds 3 --threads 1

The load average (1, 5 and 15 minutes) is printed at the start and the end: on a shared
machine the absolute figures move with it, the ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import itertools
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import llama_cpp
import llama_cpp._logger

from ronghe.engines.llm.base import ChatMessage
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.text import ChatTemplate

TEMPERATURE, TOP_P = 0.8, 0.7  # the vendor API's defaults
N_CTX = 4096  # per sequence, raw and Ronghe alike


_FRESH = itertools.count(1000)


def prompt(i: int | None = None) -> list[dict[str, str]]:
    # A different ending for every stream of every run (raw or Ronghe), so no stream finds
    # its whole prompt already in a KV cache; what any two share is the template's preamble
    # and "Write a long story about a dragon named Ember".
    n = next(_FRESH) if i is None else i
    return [{"role": "user", "content": f"Write a long story about a dragon named Ember{n}."}]


@dataclass
class Run:
    """One batch of concurrent generations: per-stream token times and the wall time."""

    starts: list[float] = field(default_factory=list)
    times: list[list[float]] = field(default_factory=list)  # token arrival times per stream
    tokens: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # CPU seconds the generating process used

    @property
    def rate(self) -> float:
        return self.tokens / self.wall

    def ttfts(self) -> list[float]:
        return [t[0] - s for s, t in zip(self.starts, self.times, strict=True) if t]

    def gaps(self) -> list[float]:
        return [b - a for t in self.times for a, b in itertools.pairwise(t)]


class Raw:
    """llama.cpp through its C API only: the baseline, no Ronghe code involved."""

    def __init__(self, threads: int, parallel: int) -> None:
        llama_cpp._logger.set_verbose(False)
        path = str(resolve_model_path("bundled:smollm2")).encode()
        self.model = llama_cpp.llama_model_load_from_file(path,
                                                          llama_cpp.llama_model_default_params())
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = N_CTX * parallel, 512, 512
        params.n_seq_max, params.kv_unified = parallel, False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as Ronghe's
        params.n_threads = params.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(512, 0, 1)
        self.eog = [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)]
        self.buf = ctypes.create_string_buffer(256)
        self.cached: dict[int, list[int]] = {}  # sequence -> the prompt its cells hold
        meta = ctypes.create_string_buffer(1 << 16)
        llama_cpp.llama_model_meta_val_str(self.model, b"tokenizer.chat_template", meta, 1 << 16)
        self.template = ChatTemplate(meta.value.decode())

    def tokens(self, messages: list[dict[str, str]]) -> list[int]:
        data = self.template.render([ChatMessage(m["role"], m["content"])  # type: ignore[arg-type]
                                     for m in messages]).encode()
        out = (llama_cpp.llama_token * (len(data) + 8))()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), out, len(out), False, True)
        return list(out[:n])

    def chain(self, seed: int) -> object:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        biases = (llama_cpp.llama_logit_bias * len(self.eog))()
        for i, t in enumerate(self.eog):
            biases[i].token, biases[i].bias = t, -100.0
        for s in (llama_cpp.llama_sampler_init_logit_bias(self.n_vocab, len(biases), biases),
                  llama_cpp.llama_sampler_init_temp(TEMPERATURE),
                  llama_cpp.llama_sampler_init_top_p(TOP_P, 1),
                  llama_cpp.llama_sampler_init_dist(seed)):
            llama_cpp.llama_sampler_chain_add(chain, s)
        return chain

    def run(self, prompts: list[list[int]], n: int) -> Run:
        chains = [self.chain(i) for i in range(len(prompts))]
        run = Run(starts=[time.perf_counter()] * len(prompts), times=[[] for _ in prompts])
        # Each sequence keeps what its cache shares with the new prompt (the template's
        # system preamble), as llama-server's cache_prompt and Ronghe's slots do.
        pos, feed = [], []
        for s, p in enumerate(prompts):
            old = self.cached.get(s, [])
            keep = next((i for i, (a, b) in enumerate(zip(old, p, strict=False)) if a != b),
                        min(len(old), len(p)))
            keep = min(keep, len(p) - 1)
            llama_cpp.llama_memory_seq_rm(self.memory, s, keep, -1)
            self.cached[s] = list(p)
            pos.append(keep)
            feed.append(list(p[keep:]))
        while True:
            b, outs = self.batch, []
            b.n_tokens = 0
            for s, toks in enumerate(feed):
                for t in toks:
                    j = b.n_tokens
                    b.token[j], b.pos[j], b.n_seq_id[j] = t, pos[s], 1
                    b.seq_id[j][0], b.logits[j] = s, False
                    b.n_tokens, pos[s] = j + 1, pos[s] + 1
                if toks:
                    b.logits[b.n_tokens - 1] = True
                    outs.append((s, b.n_tokens - 1))
            if not outs:
                break
            assert llama_cpp.llama_decode(self.ctx, b) == 0
            feed = [[] for _ in prompts]
            for s, idx in outs:
                token = llama_cpp.llama_sampler_sample(chains[s], self.ctx, idx)
                # as a streaming server must: the token's text
                llama_cpp.llama_token_to_piece(self.vocab, token, self.buf, 256, 0, False)
                run.times[s].append(time.perf_counter())
                if len(run.times[s]) < n:
                    feed[s] = [token]
        run.wall = time.perf_counter() - run.starts[0]
        run.tokens = sum(len(t) for t in run.times)
        for c in chains:
            llama_cpp.llama_sampler_free(c)
        return run


def stream_once(url: str, key: str, messages: list[dict[str, str]], tokens: int,
                bias: dict[str, int] | None, times: list[float]) -> None:
    body = {"model": "smollm2", "messages": messages, "temperature": TEMPERATURE,
            "top_p": TOP_P, "max_tokens": tokens, "stream": True}
    if bias:
        body["logit_bias"] = bias
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                times.append(time.perf_counter())


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_run(raw: Raw, prompts: list[list[int]], n: int) -> Run:
    before = time.process_time()  # only the raw loop runs in this process meanwhile
    run = raw.run(prompts, n)
    run.cpu = time.process_time() - before
    return run


def ronghe_run(server: tuple[str, str, int], streams: int, tokens: int,
               bias: dict[str, int]) -> Run:
    """``streams`` concurrent streams from one asyncio client thread: on a 2-core box a thread
    per stream would wake four client threads after every decode step to compete with the
    server for the cores (what a load generator does, not what the server costs)."""
    url, key, pid = server
    before = cpu_seconds(pid)
    run = Run(times=[[] for _ in range(streams)])

    async def all_streams() -> None:
        limits = httpx.Limits(max_connections=streams)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            # The clock starts once the client exists: building one (its SSL context, the
            # event loop) took ~30 ms here, the client's cost and not the server's; the raw
            # runs' clock starts at their first decode likewise.
            run.starts = [time.perf_counter()] * streams
            await asyncio.gather(*[stream_async(client, url, key, prompt(),
                                                tokens, bias, run.times[i])
                                   for i in range(streams)])

    asyncio.run(all_streams())
    run.wall = time.perf_counter() - run.starts[0]
    run.tokens = streams * tokens  # usage is exact: EOG is forbidden, max_tokens is reached
    run.cpu = cpu_seconds(pid) - before
    return run


async def stream_async(client: httpx.AsyncClient, url: str, key: str,
                       messages: list[dict[str, str]], tokens: int, bias: dict[str, int],
                       times: list[float]) -> None:
    body = {"model": "smollm2", "messages": messages, "temperature": TEMPERATURE,
            "top_p": TOP_P, "max_tokens": tokens, "stream": True, "logit_bias": bias}
    async with client.stream("POST", url + "/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                times.append(time.perf_counter())


def conversation(tag: str, raw: Raw) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Turn 1 and turn 2 of a ~1,500-token conversation (``tag`` makes it unique)."""
    facts = " ".join(f"Fact {i}: the {tag} lantern number {i} is painted colour {i % 7}."
                     for i in range(90))
    turn1 = [{"role": "system", "content": f"You are the archivist of {tag}."},
             {"role": "user", "content": f"Read these notes.\n{facts}\nSummarise them."}]
    turn2 = [*turn1, {"role": "assistant", "content": "The notes list painted lanterns."},
             {"role": "user", "content": "Which colour is lantern 12?"}]
    assert 1300 < len(raw.tokens(turn2)) < 1800, len(raw.tokens(turn2))
    return turn1, turn2


def ttft(url: str, key: str, messages: list[dict[str, str]]) -> float:
    times: list[float] = []
    start = time.perf_counter()
    stream_once(url, key, messages, 2, None, times)
    return times[0] - start


@contextmanager
def ronghe_server(threads: int) -> Iterator[tuple[str, str, int]]:
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
            yield started["url"], started["key"], proc.pid
        finally:
            proc.terminate()
            proc.wait(30)


def serve(data_dir: str, threads: int) -> None:
    import socket

    import uvicorn

    from ronghe.app import create_app
    from ronghe.logs import configure
    from ronghe.settings import ChatModelSpec, Settings

    configure("warning")  # no line per request in the benchmark's output

    models = [ChatModelSpec(name="smollm2", path="bundled:smollm2", n_ctx=N_CTX)]
    app = create_app(Settings(data_dir=Path(data_dir) / "data", cpu_threads=threads,
                              log_level="warning", chat_models=models, chat_parallel=4))
    services = app.state.services
    services.auth.add_user("bench@example.com", "bench password 1")
    key = services.auth.create_key("bench@example.com", "bench").secret
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

    def announce() -> None:
        while not server.started:
            time.sleep(0.05)
        tmp = Path(data_dir) / "server.tmp"
        tmp.write_text(json.dumps({"url": url, "key": key}))
        tmp.rename(Path(data_dir) / "server.json")

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


def load() -> str:
    """The 1, 5 and 15-minute load averages."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefix-rounds", type=int, default=None,
                        help="rounds of the prefix-reuse measurement (default: --rounds)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.threads)
        return

    print(f"SmolLM2-135M Q4_1, {args.tokens} tokens/stream, {args.rounds} rounds, "
          f"{args.threads} thread(s), {os.cpu_count()} CPUs, load average {load()} at start")
    raw = Raw(args.threads, 4)
    bias = {str(t): -100 for t in raw.eog}
    results: dict[str, list[Run]] = {k: [] for k in
                                     ("raw 1", "raw 4 batched", "ronghe 1", "ronghe 2",
                                      "ronghe 4", "ronghe 8")}
    with ronghe_server(args.threads) as server:
        url, key, _ = server
        raw.run([raw.tokens(prompt(-1))], 8)  # warm-up: first decode pays one-off costs
        ronghe_run(server, 1, 8, bias)
        for r in range(args.rounds):
            pairs = [("raw 1", lambda: raw_run(raw, [raw.tokens(prompt())], args.tokens)),
                     ("ronghe 1", lambda: ronghe_run(server, 1, args.tokens, bias)),
                     ("raw 4 batched", lambda: raw_run(
                         raw, [raw.tokens(prompt()) for _ in range(4)], args.tokens)),
                     ("ronghe 4", lambda: ronghe_run(server, 4, args.tokens, bias))]
            order = [0, 1, 2, 3] if r % 2 == 0 else [1, 0, 3, 2]
            for i in order:
                name, fn = pairs[i]
                results[name].append(fn())
            for n in (2, 8):
                results[f"ronghe {n}"].append(ronghe_run(server, n, args.tokens, bias))
        cold, warm = [], []
        for r in range(args.rounds if args.prefix_rounds is None else args.prefix_rounds):
            _, turn2 = conversation(f"town{r}", raw)
            cold.append(ttft(url, key, turn2))  # nothing of this conversation is cached
            _, turn2b = conversation(f"city{r}", raw)
            ttft(url, key, conversation(f"city{r}", raw)[0])  # turn 1 runs first
            warm.append(ttft(url, key, turn2b))
        load_end = load()

    print(f"{'':16} {'agg tok/s':>9} {'TTFT p50':>9} {'TTFT max':>9} {'gap p50':>8} "
          f"{'gap p99':>8} {'CPU/tok':>8}   (ms; medians over rounds, gaps pooled)")
    for name, runs in results.items():
        rate = statistics.median(r.rate for r in runs)
        ttfts = [t for r in runs for t in r.ttfts()]
        gaps = [g for r in runs for g in r.gaps()]
        cpu = statistics.median(r.cpu / r.tokens for r in runs)
        print(f"{name:16} {rate:9.1f} {pct(ttfts, 0.5) * 1000:9.1f} {max(ttfts) * 1000:9.1f} "
              f"{pct(gaps, 0.5) * 1000:8.1f} {pct(gaps, 0.99) * 1000:8.1f} {cpu * 1000:8.1f}")
    one = [h.rate / r.rate for h, r in zip(results["ronghe 1"], results["raw 1"], strict=True)]
    four = [h.rate / r.rate for h, r in zip(results["ronghe 4"], results["raw 4 batched"],
                                            strict=True)]
    print(f"ratio Ronghe 1 stream / raw 1: {statistics.median(one):.3f} (target >= 0.95; "
          f"pairs {min(one):.3f}-{max(one):.3f})")
    print(f"ratio Ronghe 4 streams / raw 4 batched: {statistics.median(four):.3f} (target >= "
          f"0.9; pairs {min(four):.3f}-{max(four):.3f})")
    # Per round: each side's 4-stream aggregate over its own 1-stream one, and their quotient.
    gain_raw = [b.rate / a.rate for a, b in zip(results["raw 1"], results["raw 4 batched"],
                                                strict=True)]
    gain_ronghe = [b.rate / a.rate for a, b in zip(results["ronghe 1"], results["ronghe 4"],
                                                   strict=True)]
    share = [h / r for h, r in zip(gain_ronghe, gain_raw, strict=True)]
    print(f"batching gain, 4 streams / 1 stream: raw {statistics.median(gain_raw):.2f} x, Ronghe "
          f"{statistics.median(gain_ronghe):.2f} x; Ronghe's / raw's {statistics.median(share):.3f}"
          f" (target >= 0.9; rounds {', '.join(f'{x:.3f}' for x in share)})"
          + ("  -- raw gains under 1.2 x: this CPU hardly rewards batching"
             if statistics.median(gain_raw) < 1.2 else ""))
    ttft1 = statistics.median(t for r in results["ronghe 1"] for t in r.ttfts())
    max4 = max(t for r in results["ronghe 4"] for t in r.ttfts())
    before_end = all(max(t[0] for t in r.times) < min(t[-1] for t in r.times)
                     for r in results["ronghe 4"])
    print(f"4 streams: max TTFT {max4 * 1000:.0f} ms = {max4 / ttft1:.2f} x single-stream "
          f"TTFT (target <= 3); every first token before any stream ended: {before_end}")
    print("4 streams, max TTFT per round (ms): " + ", ".join(
        f"{max(r.ttfts()) * 1000:.0f}" for r in results["ronghe 4"]))
    # The same figure for raw llama.cpp: the floor this CPU sets (four prompts to evaluate).
    raw1 = statistics.median(t for r in results["raw 1"] for t in r.ttfts())
    print("raw 4 batched, max TTFT per round (ms): " + ", ".join(
        f"{max(r.ttfts()) * 1000:.0f} ({max(r.ttfts()) / raw1:.2f} x raw 1)"
        for r in results["raw 4 batched"]))
    print(f"turn 2 of a ~1,500-token conversation, TTFT: cold {statistics.median(cold) * 1000:.0f}"
          f" ms, warm {statistics.median(warm) * 1000:.0f} ms "
          f"({statistics.median(cold) / statistics.median(warm):.1f}x)")
    print(f"load average at end {load_end}")


if __name__ == "__main__":
    main()
