"""`python -m tools.demo_models` (or `make demo-model ARGS=...`): build and evaluate the demo
models that ship in the package (the image model, its ControlNets, the captioner)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ronghe.engines.shipped import (
    default_captioner_path,
    default_controlnet_path,
    default_model_path,
)

app = typer.Typer(help="Build and evaluate the demo models that ship with Ronghe.",
                  no_args_is_help=True)


@app.callback()
def offline() -> None:
    """Everything here reads local folders; never ask a model hub (set per command, not at
    import, so importing this module changes nothing)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _defaults() -> tuple[Path, Path]:
    return default_model_path(), default_controlnet_path()


@app.command()
def build(
    out: Annotated[Path | None, typer.Option(help="Model folder (default: shipped)")] = None,
    controlnet_out: Annotated[
        Path | None, typer.Option(help="ControlNet folder (default: next to --out)")
    ] = None,
    work: Annotated[Path, typer.Option(help="Checkpoint folder")] = Path("demo-build/work"),
    steps: Annotated[int, typer.Option(help="UNet + text encoder steps")] = 5000,
    refine_steps: Annotated[int, typer.Option(help="Phase 1b steps (varied captions)")] = 2400,
    init_from: Annotated[Path | None, typer.Option(
        help="Skip phase 1: take it from this phase-1 model folder")] = None,
    threads: Annotated[int, typer.Option(help="torch threads")] = 2,
    controlnet_steps: Annotated[int, typer.Option(help="ControlNet steps")] = 700,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    smoke: Annotated[bool, typer.Option(help="A few steps only, to test the machinery")] = False,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Eval and record")] = True,
) -> None:
    """Train the demo model and its canny ControlNet from a seed (resumable)."""
    # Only for the build, and before torch loads OpenMP (which reads it once): a build runs
    # for an hour beside other work, and with the default spin-waiting two torch threads
    # sharing two busy cores slowed a step 15x here. Everywhere else (serve, worker, eval)
    # spinning is right: passive waiting made a 2-thread demo image 2.5x slower (0.95 s
    # against 0.37 s) on an idle machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tools.demo_models.diffusion.build import BuildConfig
    from tools.demo_models.diffusion.build import build as run_build

    default_out, default_cn = _defaults()
    out = out or default_out
    if controlnet_out is None:
        controlnet_out = (
            default_cn if out == default_out else out.parent / f"{out.name}-controlnet-canny"
        )
    config = (BuildConfig.smoke(seed=seed) if smoke else
              BuildConfig(seed=seed, steps=steps, refine_steps=refine_steps,
                          controlnet_steps=controlnet_steps, threads=threads))
    config.init_from = str(init_from) if init_from else ""
    if init_from and not (init_from / "ronghe.json").is_file():
        raise typer.BadParameter(f"{init_from} is not a demo model folder (no ronghe.json)",
                                 param_hint="--init-from")
    try:
        finished = run_build(out, controlnet_out, config, work, resume=resume)
    except ValueError as error:  # start_from refuses a model that had phase 1b
        raise typer.BadParameter(str(error), param_hint="--init-from") from None
    if finished is None:
        typer.echo("stopped before the end; run the same command again to resume")
        raise typer.Exit(3)
    typer.echo(f"wrote {out} and {controlnet_out}")
    if evaluate and not smoke:
        _record(out, controlnet_out)


def _record(model: Path, controlnet: Path) -> None:
    from tools.demo_models.diffusion.evaluate import evaluate as run_eval

    report = run_eval(model, controlnet)
    _print(report)
    _write_eval(model / "ronghe.json", report)


def _write_eval(meta_path: Path, report) -> None:
    """Record an eval's figures under ``eval`` in the model's ronghe.json."""
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta["eval"] = {**report.figures(), **report.settings, "images": len(report.samples),
                    "median_fill": report.median_fill}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


def _print(report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="demo model, held-out combinations")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    targets = {
        "shape_colour_accuracy": ">= 0.90",
        "background_colour_accuracy": ">= 0.85",
        "shape_accuracy": ">= 0.80",
        "shape_accuracy_by_fill": ">= 0.80",
        "shape_readings_agree": "-",
        "controlnet_iou": ">= 0.60",
        "seconds_per_image": "< 1",
    }
    for name, value in report.figures().items():
        table.add_row(name, "n/a" if value is None else f"{value:.3f}", targets.get(name, "-"))
    Console().print(table)
    Console().print(f"settings: {report.settings}, {len(report.samples)} images")
    Console().print(f"median fill ratio per shape: {report.median_fill}")


@app.command("build-controlnet")
def build_controlnet(
    kind: Annotated[str, typer.Option(help="brightness or tile")],
    model: Annotated[Path | None, typer.Option(help="Base model folder (default: shipped)")] = None,
    out: Annotated[Path | None, typer.Option(help="ControlNet folder (default: shipped)")] = None,
    work: Annotated[Path, typer.Option(help="Checkpoint folder")] = Path("demo-build/work"),
    steps: Annotated[int, typer.Option(help="ControlNet steps")] = 700,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="torch threads")] = 2,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    smoke: Annotated[bool, typer.Option(help="A few steps only, to test the machinery")] = False,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Eval and record")] = True,
) -> None:
    """Train a brightness or tile ControlNet on the frozen demo model (resumable)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as for build, see there
    from tools.demo_models.diffusion.control_build import KINDS, ControlBuildConfig
    from tools.demo_models.diffusion.control_build import build as run_build

    if kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="--kind")
    model = model or default_model_path()
    out = out or default_controlnet_path(kind)
    config = (ControlBuildConfig.smoke(kind, seed) if smoke else
              ControlBuildConfig(kind=kind, seed=seed, steps=steps, threads=threads))
    if run_build(model, out, config, work, resume=resume) is None:
        typer.echo("stopped before the end; run the same command again to resume")
        raise typer.Exit(3)
    typer.echo(f"wrote {out}")
    if evaluate and not smoke:
        from tools.demo_models.diffusion.control_eval import evaluate_control, record

        figures = evaluate_control(model, out, kind)
        record(out, figures)
        typer.echo(json.dumps(figures, indent=2))


@app.command("eval-controlnet")
def eval_controlnet(
    kind: Annotated[str, typer.Option(help="brightness or tile")],
    model: Annotated[Path | None, typer.Option(help="Base model folder")] = None,
    controlnet: Annotated[Path | None, typer.Option(help="ControlNet folder")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per held-out combination")] = 4,
    record_figures: Annotated[bool, typer.Option("--record", help="Into its ronghe.json")] = False,
) -> None:
    """Score a brightness/tile ControlNet against the base model without it."""
    from tools.demo_models.diffusion.control_eval import evaluate_control, record

    model = model or default_model_path()
    controlnet = controlnet or default_controlnet_path(kind)
    figures = evaluate_control(model, controlnet, kind, seeds=tuple(range(seeds)))
    typer.echo(json.dumps(figures, indent=2))
    if record_figures:
        record(controlnet, figures)


@app.command("eval")
def eval_command(
    model: Annotated[Path | None, typer.Option(help="Model folder")] = None,
    controlnet: Annotated[Path | None, typer.Option(help="Canny ControlNet folder")] = None,
    seeds: Annotated[int, typer.Option("--seeds", "--n", help="Seeds per combination")] = 4,
    steps: Annotated[int, typer.Option(help="Inference steps")] = 20,
    guidance: Annotated[float | None, typer.Option(help="Default: the model's recommended")] = None,
    every_step: Annotated[bool, typer.Option(
        help="Guide every step at full scale, not by the model's guidance schedule")] = False,
    out: Annotated[Path | None, typer.Option(help="Contact sheet PNG")] = None,
    record: Annotated[bool, typer.Option(help="Write the figures into ronghe.json")] = False,
) -> None:
    """Generate the held-out combinations with fixed seeds and score them."""
    from ronghe.engines.diffusion.guidance import GuidanceSchedule
    from tools.demo_models.diffusion.evaluate import contact_sheet
    from tools.demo_models.diffusion.evaluate import evaluate as run_eval

    default_model, default_cn = _defaults()
    model = model or default_model
    if controlnet is None and model == default_model:
        controlnet = default_cn
    meta_path = model / "ronghe.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if guidance is None:
        guidance = float(meta.get("recommended", {}).get("guidance_scale", 5.0))
    report = run_eval(
        model,
        controlnet if controlnet and controlnet.exists() else None,
        seeds=tuple(range(seeds)),
        num_inference_steps=steps,
        guidance_scale=guidance,
        schedule=GuidanceSchedule() if every_step else None,
    )
    _print(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(report).save(out)
        typer.echo(f"contact sheet: {out}")
    if record:
        _write_eval(meta_path, report)


@app.command("build-captioner")
def build_captioner(
    out: Annotated[Path | None, typer.Option(help="Captioner folder (default: shipped)")] = None,
    work: Annotated[Path, typer.Option(help="Checkpoint folder")] = Path("demo-build/captioner"),
    steps: Annotated[int, typer.Option(help="Training steps")] = 6000,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads")] = 1,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    smoke: Annotated[bool, typer.Option(help="A few steps only, to test the machinery")] = False,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Eval and record")] = True,
) -> None:
    """Train the demo captioner (image-to-text) from procedural images (resumable)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as for build, above
    from tools.demo_models.captioning.build import CaptionerConfig
    from tools.demo_models.captioning.build import build as run_build

    out = out or default_captioner_path()
    config = (CaptionerConfig.smoke(seed=seed) if smoke
              else CaptionerConfig(seed=seed, steps=steps, threads=threads))
    if run_build(out, config, work, resume=resume) is None:
        typer.echo("stopped before the end; run the same command again to resume")
        raise typer.Exit(3)
    typer.echo(f"wrote {out}")
    if evaluate and not smoke:
        _record_captioner(out)


def _record_captioner(model: Path, count: int = 300) -> None:
    from tools.demo_models.captioning.evaluate import evaluate as run_eval
    from tools.demo_models.diffusion import shapes

    base = run_eval(model, count)
    every = run_eval(model, count, shape_names=(*shapes.SHAPES, *shapes.EXTRA_SHAPES))
    typer.echo(f"held-out, circle/square/triangle: {base.figures()}")
    typer.echo(f"held-out, every shape: {every.figures()}")
    for truth, text in base.misses[:20]:
        typer.echo(f"  miss: {' '.join(truth)} -> {text!r}")
    meta_path = model / "ronghe.json"
    meta = json.loads(meta_path.read_text())
    meta["eval"] = {"demo_shapes": base.figures(), "all_shapes": every.figures()}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


@app.command("eval-captioner")
def eval_captioner(
    model: Annotated[Path | None, typer.Option(help="Captioner folder (any image-to-text "
                                                    "model)")] = None,
    count: Annotated[int, typer.Option(help="Held-out images")] = 300,
    record: Annotated[bool, typer.Option(help="Write the figures into ronghe.json")] = False,
) -> None:
    """Caption held-out procedural images and score colour, shape and background."""

    model = model or default_captioner_path()
    if record:
        _record_captioner(model, count)
        return
    from tools.demo_models.captioning.evaluate import evaluate as run_eval

    report = run_eval(model, count)
    typer.echo(json.dumps(report.figures()))
    for truth, text in report.misses[:20]:
        typer.echo(f"  miss: {' '.join(truth)} -> {text!r}")


if __name__ == "__main__":
    app()
