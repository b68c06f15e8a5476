"""Which settings make the fp32 CPU path fast? Profile one training step, then measure each lever alone.

Most CPUs have no native bf16, so glyphkit's fp32 path is what most users run. This script measures, on this
machine, with the `fast` preset's training settings and nothing else changed from the baseline:

- training images/s: memory layout (channels_last or contiguous), batch size, threads, `torch.compile` of the
  network, and the network (`glyphnet` against `glyphnet-wide`); the baseline in bf16 too when the CPU has it;
- inference images/s on test glyphs, as `glyphkit evaluate` runs them: memory layout, batch size, batch norms
  folded into the convolutions (eager) or not, the compiled frozen network, test-time augmentation;
- where a fp32 training step spends its time (torch.profiler, the operators with the most self time).

    python benchmarks/fp32_levers.py --data-dir ../shared/emnist [--only train|inference] [--out runs/fp32_levers]
        [--results PATH] [--quick]

Each rate is the median of timed windows after a warm-up (glyphkit.bench.median_rate, the benchmark's own
measure). Run it on an otherwise idle machine. Writes fp32_levers.json and fp32_levers.md (with the profile) under
--out (git-ignored `runs/` by default) and the results record benchmarks/results/fp32_levers-PART.json (PART:
train, inference or all; `--results` to choose). `--quick`: a few steps of each lever but the compiled ones, on
3,000 glyphs, a smoke test that writes a record only where --results is given.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

from glyphkit.bench import median_rate, training_rate
from glyphkit.config import Config, apply_preset
from glyphkit.inference import Predictor
from glyphkit.results import command_line, machine_info, result_path, write_result
from glyphkit.rundir import write_results
from glyphkit.training import Trainer
from glyphkit.workflows import load_data

# Each lever is the baseline (the `fast` preset's settings with glyphnet, fp32) with one thing changed.
TRAIN_LEVERS = {
    "baseline: glyphnet, batch 256, channels_last, all cores": {},
    "contiguous (NCHW) memory": {"channels_last": False},
    "batch 128": {"batch_size": 128},
    "batch 512": {"batch_size": 512},
    "1 thread": {"num_threads": 1},
    "torch.compile of the network": {"compile_training": True},
    "AdamW without the fused kernel (torch's default on a CPU)": {"fused_adamw": False},
    "glyphnet-wide (the best preset's network)": {"model": "glyphnet-wide"},
}
INFERENCE_LEVERS = {
    "baseline: eager, batch 256, channels_last, batch norms folded": {},
    "batch norms kept as layers (not folded)": {"fold": False},
    "contiguous (NCHW) memory": {"channels_last": False},
    "batch 1024": {"batch_size": 1024},
    "compiled, frozen (batch norm folded)": {"compile_model": True},
    "compiled, frozen, contiguous": {"compile_model": True, "channels_last": False},
    "test-time augmentation (5 views)": {"tta": True},
    "glyphnet-wide": {"model": "glyphnet-wide"},
    "glyphnet-wide, test-time augmentation": {"model": "glyphnet-wide", "tta": True},
}
INFERENCE_IMAGES = 8192  # test glyphs per timed window
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def baseline_config(data_dir: str, split: str, quick: bool) -> Config:
    limit = 3000 if quick else None
    base = Config(split=split, data_dir=data_dir, limit_train=limit, limit_test=limit)
    return apply_preset(base, "fast").replace(precision="fp32")  # the preset trains glyphnet


def train_rate(config: Config, data, quick: bool, compile_training: bool = False, fused_adamw: bool = True) -> float:
    """Training images/s through Trainer's own batches, forward + loss and optimizer step."""
    torch.set_num_threads(config.num_threads or CORES)
    trainer = Trainer(config, data, run_dir=None, progress=False, log=lambda *_: None)
    if compile_training:  # the training step's forward and backward through the compiler
        trainer.net = torch.compile(trainer.model)
    if not fused_adamw:  # the same parameter groups and settings, updated by torch's per-parameter loop
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in trainer.optimizer.param_groups]
        trainer.optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=False)
    return training_rate(trainer, quick, extra_warmup=3 if compile_training else 0)[0]  # compiling: first calls


def inference_rate(
    config: Config,
    data,
    quick: bool,
    batch_size: int = 256,
    compile_model: bool = False,
    tta: bool = False,
    fold: bool = True,
) -> float:
    """Images/s of a (freshly initialised) network reading test glyphs through Predictor, as evaluate does;
    `fold=False` keeps the batch norms as separate layers (Predictor's fold_batch_norms)."""
    torch.set_num_threads(CORES)
    trainer = Trainer(config, data, run_dir=None, progress=False, log=lambda *_: None)  # resolves classes, norm
    predictor = Predictor(
        trainer.eval_model,
        trainer.config,
        trainer.device,
        batch_size=batch_size,
        compile_model=compile_model,
        fold_batch_norms=fold,
    )
    images = data.test_images[: 512 if quick else INFERENCE_IMAGES]

    def infer() -> int:
        predictor.logits(images, tta)
        return len(images)

    rate, _ = median_rate(infer, 1, 2 if quick else 3, 1)  # the warm-up call compiles
    return rate


def profile_step(config: Config, data, steps: int = 6) -> list[dict]:
    """The operators with the most self CPU time over a few fp32 training steps."""
    torch.set_num_threads(CORES)
    trainer = Trainer(config, data, run_dir=None, progress=False, log=lambda *_: None)
    batches = trainer.train_batches()
    for _ in range(2):  # warm-up outside the profile
        x, y = next(batches)
        trainer.optimizer_step(trainer.loss(x, y)[0])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            x, y = next(batches)
            trainer.optimizer_step(trainer.loss(x, y)[0])
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / 1000 / steps,
            "share": e.self_cpu_time_total / total,
            "calls_per_step": e.count / steps,
        }
        for e in events[:12]
    ]


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, native bf16: {m['native_bf16']}, torch {m['torch']}."]
    for part, header in (
        ("train", "training lever (fp32 unless said) | train img/s"),
        ("inference", "inference lever (fp32 unless said) | img/s"),
    ):
        if result[part]:
            base = next(iter(result[part].values()))
            lines += ["", f"| {header} | vs baseline |", "|---|---|---|"]
            lines += [f"| {k} | {v:,.0f} | {v / base:.2f}x |" for k, v in result[part].items()]
    if result.get("profile"):
        lines += [
            "",
            "Where a fp32 training step of the baseline spends its time (self CPU time):",
            "",
            "| operator | ms per step | share | calls per step |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{r['op']}` | {r['self_ms_per_step']:.1f} | {r['share']:.0%} | {r['calls_per_step']:.0f} |"
            for r in result["profile"]
        ]
    return "\n".join(lines) + "\n"


COLUMNS = [
    {"key": "part", "header": "part"},
    {"key": "lever", "header": "lever (fp32 unless said)"},
    {"key": "images_per_s", "header": "img/s", "format": "int"},
    {"key": "vs_baseline", "header": "vs baseline", "format": "ratio"},
]
COMPILED = ("compile_training", "compile_model")  # levers --quick leaves out: compiling takes minutes on a CPU


def record_rows(result: dict) -> list[dict]:
    """One row per lever; the first of each part is its baseline."""
    rows = []
    for part in ("train", "inference"):
        if result[part]:
            base = next(iter(result[part].values()))
            rows += [
                {"part": part, "lever": k, "images_per_s": v, "vs_baseline": v / base} for k, v in result[part].items()
            ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="the split trained and read (default: proxy47)")
    parser.add_argument("--out", default="runs/fp32_levers", help="where fp32_levers.json and .md go")
    parser.add_argument(
        "--only",
        choices=["train", "inference"],
        help="measure only the training levers (and the profile) or only the inference ones",
    )
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the results record (default: benchmarks/results/"
        "fp32_levers-PART.json, PART the --only part or 'all'; with --quick: none)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few steps of every lever but the compiled ones (a smoke test, not a measurement)",
    )
    args = parser.parse_args()
    base = baseline_config(args.data_dir, args.split, args.quick)
    data = load_data(base, log=print)
    result = {"machine": {**machine_info("cpu"), "python": platform.python_version()}, "train": {}, "inference": {}}
    levers = dict(TRAIN_LEVERS) if args.only != "inference" else {}
    if levers and result["machine"]["native_bf16"]:
        levers["the baseline in bf16 (for scale)"] = {"precision": "bf16"}
    skip = lambda change: args.quick and any(change.get(k) for k in COMPILED)  # noqa: E731
    for name, change in levers.items():
        if skip(change):
            continue
        change = dict(change)
        kwargs = {k: change.pop(k) for k in ("compile_training", "fused_adamw") if k in change}
        result["train"][name] = train_rate(base.replace(**change), data, args.quick, **kwargs)
        print(f"train     {name}: {result['train'][name]:,.0f} img/s", flush=True)
    for name, change in INFERENCE_LEVERS.items() if args.only != "train" else ():
        if skip(change):
            continue
        change = dict(change)
        kwargs = {k: change.pop(k) for k in ("batch_size", "compile_model", "tta", "fold") if k in change}
        result["inference"][name] = inference_rate(base.replace(**change), data, args.quick, **kwargs)
        print(f"inference {name}: {result['inference'][name]:,.0f} img/s", flush=True)
    if args.only != "inference":
        result["profile"] = profile_step(base, data, steps=2 if args.quick else 6)
    write_results(args.out, "fp32_levers", result, markdown(result))
    print("\n" + markdown(result))
    path = result_path(args.results, args.quick, "fp32_levers", args.only or "all")
    if path is not None:
        sizes = data.sizes()
        write_result(
            path,
            what="Training and inference images/s of the `fast` preset's fp32 CPU path with one "
            "setting changed per row (the first row of each part is the baseline).",
            command=command_line(),
            columns=COLUMNS,
            rows=record_rows(result),
            machine=machine_info("cpu"),
            data=f"{args.split}: {sizes['train']:,} train / {sizes['test']:,} test images",
            summary={"threads": CORES, "python": result["machine"]["python"]},
            notes="a --quick smoke run: not a measurement" if args.quick else None,
        )
        print(f"results record: {path}")


if __name__ == "__main__":
    main()
