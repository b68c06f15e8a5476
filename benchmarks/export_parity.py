"""Do exported models answer as `glyphkit evaluate` does? Each run is exported to ONNX and to torch.export's
.pt2 (each checked by the exporter on the whole test split), then the exported files read the whole test split
and their answers are compared with the run's Predictor as `glyphkit evaluate` runs it (with bf16 autocast on a
CPU that has native bf16, fp32 elsewhere) and with the same network in fp32.

    python benchmarks/export_parity.py RUN [RUN ...] --data-dir ../shared/emnist [--out runs/export_parity]
        [--results PATH] [--quick]

Writes export_parity.json and export_parity.md under --out (git-ignored `runs/` by default); the exported files
go there too. The results record goes to benchmarks/results/export_parity-RUNS.json (RUNS: the run folders' names
joined by '+'; `--results` to choose). `--quick`: the first 64 test images and the ONNX format only, a smoke test
that writes a record only where --results is given.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from glyphkit.export import FORMATS, export_run
from glyphkit.inference import load_trained_run
from glyphkit.results import command_line, result_path, write_result
from glyphkit.rundir import write_results
from glyphkit.runtime import precision_name


def reference_answers(run_dir: str, data_dir: str | None, limit: int | None):
    """The run as `glyphkit evaluate` loads it, and its top-1 answers on the test split: as evaluate computes them
    (through the run's calibration, in its precision), and the same network in fp32."""
    load = dict(data_dir=data_dir, compile_model=False, limit_test=limit)
    run = load_trained_run(run_dir, **load)
    fp32 = load_trained_run(run_dir, precision="fp32", **load)
    return run, {
        "evaluate": run.predictor.probabilities(run.images).argmax(1).numpy(),
        "pytorch_fp32": fp32.predictor.probabilities(fp32.images).argmax(1).numpy(),
    }


def measure_run(
    run_dir: str,
    data_dir: str | None,
    out: Path,
    limit: int | None = None,
    formats: tuple[str, ...] = ("onnx", "torch"),
) -> dict:
    run, references = reference_answers(run_dir, data_dir, limit)
    labels = run.labels.numpy()
    row = {
        "run": run_dir,
        "model": run.config.model,
        "split": run.split,
        "images": len(labels),
        "evaluate_precision": precision_name(run.predictor.amp_dtype),
        "accuracy": {k: float((v == labels).mean()) for k, v in references.items()},
    }
    for fmt in formats:
        start = time.perf_counter()
        result = export_run(
            run_dir,
            fmt,
            out / f"{Path(run_dir).name}{FORMATS[fmt]}",
            parity_images=limit or 0,
            data_dir=data_dir,
            log=lambda *_: None,
        )
        exported = result.probabilities.argmax(1)  # the exported file's answers, from the exporter's own check
        assert len(exported) == len(labels), "the exporter checked other images than the run's test split"
        row[fmt] = {
            "exporter": result.metadata["exporter"],
            "export_check": result.parity,
            "accuracy": float((exported == labels).mean()),
            "same_top1_as": {k: float((exported == v).mean()) for k, v in references.items()},
            "seconds": time.perf_counter() - start,
        }
        print(f"{run_dir} {fmt}: {row[fmt]['same_top1_as']}, accuracy {row[fmt]['accuracy']:.4%}", flush=True)
    return row


COLUMNS = [
    {"key": "run", "header": "run"},
    {"key": "model", "header": "model"},
    {"key": "format", "header": "format"},
    {"key": "images", "header": "images", "format": "int"},
    {"key": "same_top1_as_evaluate", "header": "same top-1 as `evaluate`", "format": "percent"},
    {"key": "export_accuracy", "header": "accuracy of the export", "format": "percent"},
    {"key": "evaluate_accuracy", "header": "accuracy of `evaluate`", "format": "percent"},
    {"key": "evaluate_precision", "header": "`evaluate` precision"},
    {"key": "same_top1_as_fp32", "header": "same top-1 as PyTorch fp32", "format": "percent"},
    {"key": "max_probability_difference", "header": "largest probability difference (fp32)", "format": "sci"},
    {"key": "seconds", "header": "export and check", "format": "seconds"},
]


def record_rows(rows: list[dict]) -> list[dict]:
    """One row per run and format."""
    return [
        {
            "run": Path(r["run"]).name,
            "model": r["model"],
            "format": "ONNX" if fmt == "onnx" else ".pt2",
            "images": r["images"],
            "same_top1_as_evaluate": r[fmt]["same_top1_as"]["evaluate"],
            "export_accuracy": r[fmt]["accuracy"],
            "evaluate_accuracy": r["accuracy"]["evaluate"],
            "evaluate_precision": r["evaluate_precision"],
            "same_top1_as_fp32": r[fmt]["same_top1_as"]["pytorch_fp32"],
            "max_probability_difference": r[fmt]["export_check"]["max_probability_difference"],
            "seconds": r[fmt]["seconds"],
        }
        for r in rows
        for fmt in ("onnx", "torch")
        if fmt in r
    ]


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | format | images | same top-1 as `evaluate` | accuracy: export / `evaluate` | "
        "same top-1 as PyTorch fp32 | largest probability difference (fp32) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for fmt in (f for f in ("onnx", "torch") if f in r):
            e = r[fmt]
            lines.append(
                f"| {r['model']} | {'ONNX' if fmt == 'onnx' else '.pt2'} | {r['images']:,} | "
                f"{e['same_top1_as']['evaluate']:.4%} | "
                f"{e['accuracy']:.4%} / {r['accuracy']['evaluate']:.4%} | "
                f"{e['same_top1_as']['pytorch_fp32']:.4%} | "
                f"{e['export_check']['max_probability_difference']:.1e} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders")
    parser.add_argument("--data-dir", help="folder with the runs' split (default: each run's own)")
    parser.add_argument("--out", default="runs/export_parity", help="where the files and results go")
    parser.add_argument(
        "--results",
        metavar="PATH",
        help="the results record (default: benchmarks/results/"
        "export_parity-RUNS.json, RUNS the run folders' names joined by '+'; with --quick: none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="64 test images, ONNX only: a smoke test, not a measurement"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    limit, formats = (64, ("onnx",)) if args.quick else (None, ("onnx", "torch"))
    rows = [measure_run(run, args.data_dir, out, limit, formats) for run in args.runs]
    write_results(out, "export_parity", rows, markdown(rows))
    print(markdown(rows))
    path = result_path(args.results, args.quick, "export_parity", "+".join(Path(r).name for r in args.runs))
    if path is not None:
        splits = sorted({r["split"] for r in rows})
        write_result(
            path,
            what="Exported models (ONNX in onnxruntime, torch.export's .pt2) against the run as "
            "`glyphkit evaluate` reads it and against the same network in fp32: top-1 agreement on the "
            "test split.",
            command=command_line(),
            columns=COLUMNS,
            rows=record_rows(rows),
            data=", ".join(f"{s} test" for s in splits) + f", {rows[0]['images']:,} images",
            notes="a --quick smoke run: not a measurement" if args.quick else None,
        )
        print(f"results record: {path}")


if __name__ == "__main__":
    main()
