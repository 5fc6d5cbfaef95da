"""Image task speed: the bare pipeline against the same request through Ronghe's task API.

One run measures, against a real uvicorn server (``ronghe serve`` in a subprocess):

- **overhead**: the same request (model, prompt, seed, size, steps, images) run directly on
  Ronghe's ``ImageEngine`` in this process (the diffusers call alone) and submitted through
  ``task_submit`` -> polled with ``task_result`` until done (validation, queueing, the worker,
  progress writes, JPEG encoding with metadata, storage).  Direct and API runs alternate and
  the overhead is the median of the per-pair ratios, so load that drifts during the run
  moves both halves of a pair alike (target: <= 5 %);
- **previews**: the same request through two servers, one with live previews on (the
  default) and one with them off (``image_previews: false``), alternating, median of the
  per-pair ratios (target: previews cost <= 5 %);
- **polling**: ``task_result`` requests/s and latency percentiles from concurrent pollers
  (several client processes, each with many keep-alive connections) while a long generation
  runs in the server (targets: >= 1000 requests/s, p99 <= 50 ms).  The pollers use a
  minimal HTTP/1.1 client by default, like wrk, so on a small machine the client's own CPU
  does not starve the server it measures; ``--client httpx`` polls with httpx instead.

Only the loopback address is used; every loop is bounded in count and time.

    python bench/images.py --runs 5 --threads 1 --pollers 2 --connections 16 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a red circle on a blue background"
PASSWORD = "bench password 123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(root: Path, threads: int, worker_process: bool = True,
                previews: bool = True, name: str = "ronghe") -> Path:
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(root / f"data-{name}"), "cpu_threads": threads, "chat_models": [],
        "log_level": "warning", "image_worker_process": worker_process,
        "image_previews": previews}))
    return config


def make_token(config: Path) -> str:
    from ronghe.db.migrate import upgrade
    from ronghe.services import Services
    from ronghe.settings import Settings

    services = Services.build(Settings(config_file=config))
    upgrade(services.db.engine)
    services.auth.add_user("bench@example.com", PASSWORD)
    token = services.auth.issue_token("bench@example.com").secret
    services.close()
    return token


def start_server(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "serve", "--config",
                                 str(config), "--port", str(port)], stdout=out, stderr=out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited:\n" + log.read_text()[-3000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


class Direct:
    """The same generation, straight on the engine (no API, no queue, no JPEG)."""

    def __init__(self, config: Path, threads: int) -> None:
        from ronghe.engines.cpu import budget
        from ronghe.engines.diffusion.generate import ImageEngine
        from ronghe.engines.diffusion.pipelines import PipelineCache
        from ronghe.engines.diffusion.registry import ModelRegistry
        from ronghe.settings import Settings

        registry = ModelRegistry(Settings(config_file=config))
        budget.configure(threads)
        # In this process, on the calling thread: the pipeline call and nothing else.
        self.engine = ImageEngine(registry, PipelineCache(registry))
        self.entry = registry.get("")

    def run(self, request: dict[str, Any]) -> float:
        from ronghe.engines.diffusion.generate import GenerationRequest

        width, height = (int(x) for x in request["output_size"].split("x"))
        seeds = [request["select_seed"] + i for i in range(request["n_images"])]
        req = GenerationRequest(PROMPT, seeds, width, height, request["ddim_steps"],
                                float(request["scale"]), model=self.entry.name)
        started = time.perf_counter()
        self.engine.generate(req)
        return time.perf_counter() - started


def via_api(base: str, token: str, request: dict[str, Any], interval: float,
            timeout: float = 600) -> tuple[float, str, float]:
    """Seconds from submit until a poll sees "done", polling every ``interval`` seconds
    (a client that polled flat out would steal the CPU the generation runs on); the task
    id; the wall-clock time of the submit."""
    with httpx.Client(timeout=30) as client:
        submitted = time.time()
        started = time.perf_counter()
        task_id = client.post(f"{base}/task_submit", json={"token": token, **request}).json()[
            "task_id"]
        deadline = started + timeout
        while time.perf_counter() < deadline:
            body = client.post(f"{base}/task_result",
                               json={"token": token, "task_id": task_id}).json()
            if body["state"] == "done":
                return time.perf_counter() - started, task_id, submitted
            if body["state"] in ("failed", "cancelled"):
                raise SystemExit(f"task {body['state']}: {body['error_msg']}")
            time.sleep(interval)
    raise SystemExit("task did not finish in time")


def server_times(config: Path, runs: list[tuple[str, float]]) -> list[dict[str, float]]:
    """Per task, from its row: submit -> done as the server recorded it (no polling
    granularity), queue wait, generation in the worker process, and the rest."""
    from ronghe.services import Services
    from ronghe.settings import Settings

    services = Services.build(Settings(config_file=config))
    try:
        out = []
        for task_id, submitted in runs:
            t = services.tasks.get(task_id)
            assert t.started_at and t.finished_at and t.result
            run = (t.finished_at - t.started_at).total_seconds()
            out.append({"done": t.finished_at.timestamp() - submitted,
                        "queue": (t.started_at - t.created_at).total_seconds(),
                        "engine": float(t.result["seconds"]),
                        "rest": run - float(t.result["seconds"])})
        return out
    finally:
        services.close()


# --- pollers (separate processes, so the client's own CPU use is spread out)


async def _poll_httpx(base: str, token: str, task_id: str, connections: int,
                     seconds: float, max_requests: int) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        async def loop() -> None:
            body = {"token": token, "task_id": task_id}
            while time.perf_counter() < stop and len(latencies) < max_requests:
                t0 = time.perf_counter()
                response = await client.post(f"{base}/task_result", json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"task_result answered {response.status_code}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(loop() for _ in range(connections)))
    return latencies


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


async def _poll_raw(base: str, token: str, task_id: str, connections: int,
                    seconds: float, max_requests: int) -> list[float]:
    """A minimal keep-alive HTTP/1.1 load generator (what wrk does): one pre-encoded
    request per connection, replies read by Content-Length.  It spends ~10x less CPU per
    request than httpx, so on a small machine the figure is the server's, not the
    client's."""
    url = httpx.URL(base)
    body = json.dumps({"token": token, "task_id": task_id}).encode()
    request = (f"POST {url.path}/task_result HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            while time.perf_counter() < stop and len(latencies) < max_requests:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = CONTENT_LENGTH.search(head)
                if not head.startswith(b"HTTP/1.1 200") or length is None:
                    raise RuntimeError(f"task_result answered {head[:80]!r}")
                reply = await reader.readexactly(int(length[1]))
                latencies.append(time.perf_counter() - t0)
                if len(latencies) == 1 and json.loads(reply)["task_id"] != task_id:
                    raise RuntimeError(f"unexpected reply {reply[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(loop() for _ in range(connections)))
    return latencies


def _poller(args: tuple[str, str, str, str, int, float, int]) -> tuple[list[float], float]:
    """One client process: its latencies and its own polling window (process start-up,
    which the pool's wall time would include, is not counted)."""
    client, *rest = args
    poll = _poll_raw if client == "raw" else _poll_httpx
    started = time.perf_counter()
    latencies = asyncio.run(poll(*rest))  # type: ignore[arg-type]
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_previews(root: Path, args: argparse.Namespace, request: dict[str, Any],
                     base_on: str, token_on: str) -> None:
    """The server under test has previews on; a second one, previews off."""
    config_off = make_config(root, args.threads, not args.in_thread, previews=False,
                             name="no-previews")
    token_off = make_token(config_off)
    port = free_port()
    base_off = f"http://127.0.0.1:{port}/api/v1b"
    server = start_server(config_off, port, root / "server-no-previews.log")
    try:
        via_api(base_off, token_off, request, args.poll_interval)  # warm up
        on_runs, off_runs = [], []
        for i in range(args.preview_runs):
            order = [(True, base_on, token_on), (False, base_off, token_off)]
            for previews, base, token in order if i % 2 == 0 else order[::-1]:
                _, task_id, submitted = via_api(base, token, request, args.poll_interval)
                (on_runs if previews else off_runs).append((task_id, submitted))
        on_t = server_times(root / "ronghe.yaml", on_runs)
        off_t = server_times(config_off, off_runs)
        on = [t["engine"] + t["rest"] for t in on_t]
        off = [t["engine"] + t["rest"] for t in off_t]
        with httpx.Client(timeout=30) as client:
            # How many previews a run makes: distinct pictures a fast poller sees in one task.
            task_id = client.post(f"{base_on}/task_submit",
                                  json={"token": token_on, **request}).json()["task_id"]
            pictures: set[bytes] = set()
            while True:
                body = client.post(f"{base_on}/task_result",
                                   json={"token": token_on, "task_id": task_id}).json()
                if body["preview"]:
                    picture = client.get(body["preview"])
                    if picture.status_code == 200:
                        pictures.add(picture.content)
                if body["state"] not in ("pending", "running"):
                    break
                time.sleep(0.05)
            seen = len(pictures)
        cost = statistics.median([a / b - 1 for a, b in zip(on, off, strict=True)])
        engine_cost = statistics.median([a["engine"] / b["engine"] - 1
                                         for a, b in zip(on_t, off_t, strict=True)])
        print(f"\nlive previews ({args.preview_runs} on/off pairs, worker time per task):")
        print(f"  previews on median {statistics.median(on):.3f} s, off "
              f"{statistics.median(off):.3f} s; cost, median of paired ratios: "
              f"{cost * 100:+.1f} % (target <= 5 %); of the generation alone "
              f"{engine_cost * 100:+.1f} %; rest (JPEGs, storage, bookkeeping) on "
              f"{statistics.median([t['rest'] for t in on_t]) * 1000:.0f} ms, off "
              f"{statistics.median([t['rest'] for t in off_t]) * 1000:.0f} ms; "
              f"{seen} distinct previews in one task")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="direct/API pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (cpu_threads)")
    parser.add_argument("--n-images", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--poll-interval", type=float, default=0.25,
                        help="seconds between task_result calls while timing a task")
    parser.add_argument("--in-thread", action="store_true",
                        help="generate in the server's worker thread, not a child process")
    parser.add_argument("--preview-runs", type=int, default=6,
                        help="previews on/off pairs (0: skip)")
    parser.add_argument("--pollers", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=16, help="per client process")
    parser.add_argument("--seconds", type=float, default=10.0, help="polling duration")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="pollers' HTTP client: a minimal keep-alive one (like wrk), or "
                        "httpx.AsyncClient")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ronghe-bench-images-"))
    config = make_config(root, args.threads, not args.in_thread)
    token = make_token(config)
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1b"
    server = start_server(config, port, root / "server.log")
    try:
        request = {"n_images": args.n_images, "ddim_steps": args.steps,
                   "output_size": args.size, "select_seed": 1, "scale": 5,
                   "prompt": PROMPT}
        direct = Direct(config, args.threads)
        direct.run(request)  # load and warm up both sides
        via_api(base, token, request, args.poll_interval)
        directs, observed, runs = [], [], []
        for i in range(args.runs):
            if i % 2 == 0:
                d = direct.run(request)
                a, task_id, submitted = via_api(base, token, request, args.poll_interval)
            else:
                a, task_id, submitted = via_api(base, token, request, args.poll_interval)
                d = direct.run(request)
            directs.append(d)
            observed.append(a)
            runs.append((task_id, submitted))
            print(f"run {i + 1}: direct {d:.3f} s, API (seen by the poller) {a:.3f} s",
                  flush=True)
        times = server_times(config, runs)
        done = [t["done"] for t in times]

        def median(values: list[float]) -> float:
            return statistics.median(values)

        print(f"\ngeneration ({args.n_images} x {args.size}, {args.steps} steps, "
              f"{args.threads} torch thread(s), {args.runs} pairs):")
        print(f"  direct (bare pipeline call) median {median(directs):.3f} s")
        print(f"  API submit -> done median {median(done):.3f} s as the server recorded it, "
              f"{median(observed):.3f} s as a client polling every "
              f"{args.poll_interval * 1000:.0f} ms saw it")
        recorded = median([a / d - 1 for a, d in zip(done, directs, strict=True)])
        seen = median([a / d - 1 for a, d in zip(observed, directs, strict=True)])
        print(f"  API overhead, median of paired ratios: {recorded * 100:+.1f} % recorded, "
              f"{seen * 100:+.1f} % seen by the poller (target <= 5 %)")
        queue = median([t["queue"] for t in times])
        engine = median([t["engine"] for t in times])
        rest = median([t["rest"] for t in times])
        print(f"  server side, medians: queue wait {queue * 1000:.0f} ms, generation in the "
              f"worker process {engine:.3f} s, JPEGs + storage + bookkeeping "
              f"{rest * 1000:.0f} ms")

        if args.preview_runs:
            measure_previews(root, args, request, base, token)

        # A generation long enough to outlast the polling window.
        long_request = {**request, "n_images": 8, "ddim_steps": 150}
        with httpx.Client(timeout=30) as client:
            task_id = client.post(f"{base}/task_submit",
                                  json={"token": token, **long_request}).json()["task_id"]
            while client.post(f"{base}/task_result", json={"token": token, "task_id": task_id}
                              ).json()["state"] != "running":
                time.sleep(0.01)
        jobs = [(args.client, base, token, task_id, args.connections, args.seconds,
                 200_000)] * args.pollers
        with multiprocessing.get_context("spawn").Pool(args.pollers) as pool:
            parts = pool.map(_poller, jobs)
        latencies = [x for part, _ in parts for x in part]
        elapsed = statistics.mean(window for _, window in parts)
        with httpx.Client(timeout=30) as client:
            state = client.post(f"{base}/task_result",
                                json={"token": token, "task_id": task_id}).json()
        print(f"\npolling task_result while a generation runs ({args.pollers} processes x "
              f"{args.connections} connections, {args.client} client, {args.seconds:g} s; "
              f"the task was "
              f"{state['state']} at {state['progress']:.0%} afterwards):")
        print(f"  {len(latencies)} requests, {len(latencies) / elapsed:.0f} requests/s "
              f"(target >= 1000)")
        print(f"  latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms (target <= 50 ms), "
              f"max {max(latencies) * 1000:.1f} ms")
        with httpx.Client(timeout=30) as client:
            client.post(f"{base}/task_cancel", json={"token": token, "task_id": task_id})
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
