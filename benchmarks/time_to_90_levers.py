"""Which change gets the `fast` preset to 90% sooner: a schedule, a batch size, an input size, augmentation?

`glyphkit bench` measures the time to 90% proxy47 test accuracy of the `fast` preset as it is. This script trains
the preset with one thing changed per run, through the benchmark's own measure (glyphkit.bench.time_to_accuracy:
test accuracy after every epoch, those evaluations left out of the clock), and tabulates the results:

- `half_schedule`: the one-cycle schedule over half the preset's epochs (4 of 8);
- `batch128`: batches of 128 instead of 256, so twice the optimizer steps per epoch at about the same images per
  second (benchmarks/fp32_levers.py measured 1.01x in fp32), at the preset's learning rate;
- `progressive20`: progressive resizing (as fastai teaches it; `Config.progressive_size`): the first half of the
  epochs on glyphs shrunk to 20x20 (about half the convolution work per image; the network's global pooling takes
  any size), the rest at the full 28x28, so the model a user gets reads 28x28 glyphs like any other;
- `light_aug`: milder augmentation (rotation +-5 degrees, shift 4%, zoom +-5%): a run of a few epochs sees each
  glyph only a few times, and still fits the training set less well than the validation set under the preset's;
- `no_rotation`: shift and zoom kept, no rotation;
- `no_aug`: no augmentation at all (`--no-augment`);
- `aug_all` / `aug_half`: the preset's rotation, shift and zoom on every glyph (the preset until 2026-11-30) / on
  half of them, the other half trained on as stored (`--augment-share 0.5`, the preset since). Whatever a lever
  does to the test accuracy, check what it does to reading scans too (benchmarks/paper_test.py on the lever's run
  folder, OUT/LEVER).
- `wide`: `glyphnet-wide`, 1.5x the width, which the preset trained in bf16 until 2026-11-30 (and glyphnet in
  fp32): 0.1-0.2 point more accurate after the same epochs, at 1.5-2x the time per epoch.

    python benchmarks/time_to_90_levers.py --data-dir ../shared/emnist [--precision bf16|fp32]
        [--levers preset,half_schedule,batch128,progressive20,light_aug,no_rotation,no_aug,aug_all,aug_half,
         wide] [--seed 42]
        [--epochs N] [--out runs/time_to_90_levers] [--results PATH] [--quick]

`preset` is the preset unchanged (as `glyphkit bench --skip-throughput` trains it), for a comparison on the same
machine on the same day; `--seed` repeats a comparison with other random draws; `--epochs` lengthens or shortens
every lever's schedule (progressive resizing then shrinks the first half of the new count). After the shrunk epochs
the per-epoch test accuracy is read at 28x28 while the network has trained at 20x20, so those rows are low;
only the rows from the first full-size epoch on say anything. Run it on an otherwise idle machine. Writes
time_to_90_levers.json and .md under --out (git-ignored `runs/` by default) after every lever, and the results
record benchmarks/results/time_to_90_levers-LABEL.json at the end (LABEL: the precision, then the seed, the epochs
and the levers where they are not the defaults; `--results` to choose; with --quick none unless --results).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from glyphkit.bench import time_to_accuracy
from glyphkit.config import Config, apply_preset
from glyphkit.results import command_line, machine_info, result_path, write_result
from glyphkit.rundir import write_results
from glyphkit.runtime import set_threads
from glyphkit.workflows import load_data

# name -> (description, the preset's config -> the lever's)
LEVERS = {
    "preset": ("the preset unchanged", lambda c: c),
    "half_schedule": ("one-cycle over half the epochs", lambda c: c.replace(epochs=(c.epochs + 1) // 2)),
    "batch128": ("batches of 128: twice the steps per epoch", lambda c: c.replace(batch_size=128)),
    "progressive20": ("first half of the epochs at 20x20, then 28x28", lambda c: c.replace(progressive_size=20)),
    "light_aug": (
        "milder augmentation (every glyph): rotation 5, shift 0.04, zoom 0.05",
        lambda c: c.replace(rotation_degree=5.0, affine_degree=0.0, translate=0.04, scale=0.05, augment_share=1.0),
    ),
    "no_rotation": (
        "no rotation (shift and zoom kept, every glyph)",
        lambda c: c.replace(rotation_degree=0.0, affine_degree=0.0, augment_share=1.0),
    ),
    "no_aug": ("no augmentation (--no-augment)", lambda c: c.replace(augment=False)),
    "aug_all": (
        "the preset's augmentation on every glyph (the preset until 2026-11-30)",
        lambda c: c.replace(augment_share=1.0),
    ),
    "aug_half": (
        "the preset's augmentation on half of the glyphs (--augment-share 0.5, the preset since 2026-11-30)",
        lambda c: c.replace(augment_share=0.5),
    ),
    "wide": (
        "glyphnet-wide, 1.5x the width (the preset's network in bf16 until 2026-11-30)",
        lambda c: c.replace(model="glyphnet-wide"),
    ),
}


def summarise(description: str, run: dict) -> dict:
    """The numbers the table shows, from time_to_accuracy's result (epoch times split into shrunk and full-size)."""
    rows = run["epochs"]
    walls = [0.0] + [r["wall_s"] for r in rows]
    epoch_s = [b - a for a, b in zip(walls, walls[1:])]
    small = Config.from_dict(run["config"]).shrunk_epochs  # epochs trained on shrunk glyphs
    peak = max(rows, key=lambda r: r["test_acc"])
    final = run["final"].get("tta", run["final"]["plain"])
    return {
        "lever": description,
        "epochs": len(rows),
        "precision": run["precision"],
        "seed": run["config"]["seed"],
        "median_small_epoch_s": statistics.median(epoch_s[:small]) if small else None,
        "median_epoch_s": statistics.median(epoch_s[small:]),
        "time_to_90_s": run["time_to_90_s"],
        "time_to_90_epoch": run["time_to_90_epoch"],
        "peak_test_acc": peak["test_acc"],
        "peak_epoch": peak["epoch"],
        "best_epoch": run["best_epoch"],
        "final_test_acc": final["test_acc"],
        "total_wall_s": run["total_wall_s"],
        "per_epoch_test_acc": [r["test_acc"] for r in rows],
    }


COLUMNS = [
    {"key": "key", "header": "lever name"},
    {"key": "lever", "header": "lever (the `fast` preset with one change)"},
    {"key": "precision", "header": "precision"},
    {"key": "seed", "header": "seed", "format": "int"},
    {"key": "epochs", "header": "epochs", "format": "int"},
    {"key": "median_small_epoch_s", "header": "shrunk epoch (median)", "format": "seconds"},
    {"key": "median_epoch_s", "header": "epoch (median)", "format": "seconds"},
    {"key": "time_to_90_s", "header": "time to 90%", "format": "minutes"},
    {"key": "time_to_90_epoch", "header": "at epoch"},
    {"key": "peak_test_acc", "header": "peak test acc", "format": "percent"},
    {"key": "peak_epoch", "header": "peak epoch", "format": "int"},
    {"key": "final_test_acc", "header": "final test acc (best validation epoch, TTA)", "format": "percent"},
    {"key": "best_epoch", "header": "best epoch", "format": "int"},
    {"key": "total_wall_s", "header": "total", "format": "minutes"},
]


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, native bf16: {m['native_bf16']}, torch {m['torch']}.",
        "",
        "| lever (the `fast` preset with one change) | precision | seed | epochs | epoch (median) | "
        "time to 90% | peak test acc (epoch) | final, best validation epoch, TTA | total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["levers"].values():
        reached = (
            "not reached"
            if s["time_to_90_s"] is None
            else f"{s['time_to_90_s'] / 60:.1f} min (epoch {s['time_to_90_epoch']})"
        )
        epoch = f"{s['median_epoch_s']:.0f} s"
        if s["median_small_epoch_s"] is not None:
            epoch = f"{s['median_small_epoch_s']:.0f} s shrunk, then {epoch}"
        lines.append(
            f"| {s['lever']} | {s['precision']} | {s['seed']} | {s['epochs']} | {epoch} | {reached} | "
            f"{s['peak_test_acc']:.4f} ({s['peak_epoch']}) | {s['final_test_acc']:.4f} "
            f"(epoch {s['best_epoch']}) | {s['total_wall_s'] / 60:.1f} min |"
        )
    lines += ["", "Test accuracy per epoch:", ""]
    lines += [
        f"- {s['lever']}: " + ", ".join(f"{a:.4f}" for a in s["per_epoch_test_acc"]) for s in result["levers"].values()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the split's EMNIST files")
    parser.add_argument("--split", default="proxy47", help="the split trained and tested (default: proxy47)")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="every lever's training precision (default: auto)",
    )
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated, of: {', '.join(LEVERS)}")
    parser.add_argument("--seed", type=int, default=Config.seed, help=f"random seed (default: {Config.seed})")
    parser.add_argument("--epochs", type=int, help="every lever's epochs (default: the preset's)")
    parser.add_argument("--out", default="runs/time_to_90_levers", help="where the runs and the tables go")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the results record (default: benchmarks/results/"
        "time_to_90_levers-LABEL.json, LABEL the precision and what is not the default; with --quick: "
        "none)",
    )
    parser.add_argument("--quick", action="store_true", help="2 epochs on 3,000 glyphs per lever (a smoke test)")
    args = parser.parse_args()
    names = [n.strip() for n in args.levers.split(",") if n.strip()]
    if unknown := [n for n in names if n not in LEVERS]:
        parser.error(f"unknown lever(s) {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    set_threads()
    limit = 3000 if args.quick else None
    base = Config(
        split=args.split,
        data_dir=args.data_dir,
        precision=args.precision,
        seed=args.seed,
        limit_train=limit,
        limit_test=limit,
    )
    data = load_data(base, log=print)
    out = Path(args.out)
    result = {"machine": machine_info("cpu"), "split": args.split, "levers": {}}
    for name in names:
        description, change = LEVERS[name]
        config = apply_preset(base, "fast")
        config = change(config.replace(epochs=2 if args.quick else args.epochs or config.epochs))
        print(f"{name}: {description} ({config.model}, {config.epochs} epochs, precision {args.precision})")
        run = time_to_accuracy(config, data, out / name, (0.905, 0.885), print)
        result["levers"][name] = summarise(description, run)
        write_results(out, "time_to_90_levers", result, markdown(result))  # after every lever: nothing lost
    print("\n" + markdown(result))
    label = "-".join(
        [
            args.precision,
            *([f"seed{args.seed}"] if args.seed != Config.seed else []),
            *([f"{args.epochs}ep"] if args.epochs else []),
            *([] if names == list(LEVERS) else names),
        ]
    )
    path = result_path(args.results, args.quick, "time_to_90_levers", label)
    if path is not None:
        sizes = data.sizes()
        write_result(
            path,
            what="Time to 90% test accuracy of the `fast` preset with one change per row (test "
            "accuracy after every epoch, those evaluations left out of the clock).",
            command=command_line(),
            columns=COLUMNS,
            rows=[{"key": k, **{c["key"]: s.get(c["key"]) for c in COLUMNS[1:]}} for k, s in result["levers"].items()],
            machine=result["machine"],
            data=f"{args.split}: {sizes['train']:,} train / {sizes['test']:,} test images",
            notes="a --quick smoke run: not a measurement" if args.quick else None,
        )
        print(f"results record: {path}")


if __name__ == "__main__":
    main()
