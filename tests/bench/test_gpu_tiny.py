"""``bench/gpu.py --tiny``: every section of the GPU benchmark on tiny models, on this CPU.

The GPU run happens on a lent H100 (docs/benchmarks.md, "Images on a GPU"), once, with a few
minutes of device time; this test keeps it a formality: the same script, the same code path
(the engine through a PipelineCache, raw diffusers beside it, each offload mode, both
trainers, the compile row), on tiny random-weight components.  Its figures mean nothing
for speed; what it checks is that every row is measured and none fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("sd15", "sdxl", "flux")


def test_tiny_run_measures_every_row(tmp_path: Path) -> None:
    out, md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--tiny",
                           "--compile", "--json", str(out), "--markdown", str(md)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["errors"] == [] and results["skipped"] == []
    assert results["meta"]["tiny"] and results["meta"]["device"] == "cpu"

    speed = {(r["family"], r["batch"]) for r in results["speed"]}
    assert speed == {(f, b) for f in FAMILIES for b in (1, 2)}
    offload = {(r["family"], r["offload"]) for r in results["offload"]}
    assert offload == {(f, m) for f in FAMILIES for m in ("none", "model", "sequential")}
    for r in results["speed"] + results["offload"]:
        for side in ("raw", "ronghe"):
            assert not r[side]["error"], r
            assert r[side]["it_s"] > 0 and r[side]["s_per_image"] > 0, r
        assert r["ratio"] > 0

    assert [c["family"] for c in results["cold"]] == list(FAMILIES)
    assert all(c["raw_total_s"] > 0 and c["ronghe_total_s"] > 0 for c in results["cold"])

    train = {t["family"]: t for t in results["train"]}
    assert set(train) == {"sdxl", "flux"}
    for t in train.values():
        assert t["raw"]["steps_s"] > 0 and t["ronghe"]["steps_s"] > 0
        # The same adapter on both sides: the family's targets at the same rank.
        assert t["raw"]["lora_params"] == t["ronghe"]["lora_params"] > 0

    # On a CPU the cache compiles nothing (the row runs the same steps in-process).
    [compiled] = results["compile"]
    assert compiled["compiled"] is False and compiled["compiled_it_s"] > 0

    table = md.read_text(encoding="utf-8")
    assert "TINY components: not meaningful for speed" in table
    assert "| sdxl | 32² | 1 | sequential |" in table
