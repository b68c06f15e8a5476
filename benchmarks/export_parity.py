"""Do exported models answer as `glyphkit evaluate` does? Each run is exported to ONNX and to torch.export's
.pt2 (each checked by the exporter on the whole test split), then the exported files read the whole test split
and their answers are compared with the run's Predictor as `glyphkit evaluate` runs it (with bf16 autocast on a
CPU that has native bf16, fp32 elsewhere) and with the same network in fp32.

    python benchmarks/export_parity.py RUN [RUN ...] --data-dir ../shared/emnist [--out runs/export_parity]

Writes export_parity.json and export_parity.md (README's table) under --out (git-ignored `runs/` by default);
the exported files go there too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from glyphkit.export import export_run
from glyphkit.inference import load_trained_run
from glyphkit.rundir import write_results
from glyphkit.runtime import precision_name


def reference_answers(run) -> dict[str, np.ndarray]:
    """Top-1 answers on the test split: as `glyphkit evaluate` computes them (through the run's calibration), and
    the same network in fp32."""
    evaluate = run.predictor.probabilities(run.images).argmax(1).numpy()
    amp_dtype, run.predictor.amp_dtype = run.predictor.amp_dtype, None  # without autocast
    fp32 = run.predictor.probabilities(run.images).argmax(1).numpy()
    run.predictor.amp_dtype = amp_dtype
    return {"evaluate": evaluate, "pytorch_fp32": fp32}


def measure_run(run_dir: str, data_dir: str | None, out: Path) -> dict:
    run = load_trained_run(run_dir, data_dir=data_dir, compile_model=False)
    references, labels = reference_answers(run), run.labels.numpy()
    row = {"run": run_dir, "model": run.config.model, "split": run.split, "images": len(labels),
           "evaluate_precision": precision_name(run.predictor.amp_dtype),
           "accuracy": {k: float((v == labels).mean()) for k, v in references.items()}}
    for fmt, suffix in (("onnx", ".onnx"), ("torch", ".pt2")):
        start = time.perf_counter()
        result = export_run(run_dir, fmt, out / f"{Path(run_dir).name}{suffix}", parity_images=0, data_dir=data_dir)
        exported = result.probabilities.argmax(1)  # the exported file's answers, from the exporter's own check
        assert len(exported) == len(labels), "the exporter checked other images than the run's test split"
        row[fmt] = {"exporter": result.metadata["exporter"], "export_check": result.parity,
                    "accuracy": float((exported == labels).mean()),
                    "same_top1_as": {k: float((exported == v).mean()) for k, v in references.items()},
                    "seconds": time.perf_counter() - start}
        print(f"{run_dir} {fmt}: {row[fmt]['same_top1_as']}, accuracy {row[fmt]['accuracy']:.4%}", flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | format | images | same top-1 as `evaluate` | accuracy: export / `evaluate` | "
             "same top-1 as PyTorch fp32 | largest probability difference (fp32) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        for fmt in ("onnx", "torch"):
            e = r[fmt]
            lines.append(f"| {r['model']} | {'ONNX' if fmt == 'onnx' else '.pt2'} | {r['images']:,} | "
                         f"{e['same_top1_as']['evaluate']:.4%} | {e['accuracy']:.4%} / {r['accuracy']['evaluate']:.4%} | "
                         f"{e['same_top1_as']['pytorch_fp32']:.4%} | "
                         f"{e['export_check']['max_probability_difference']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders")
    parser.add_argument("--data-dir", help="folder with the runs' split (default: each run's own)")
    parser.add_argument("--out", default="runs/export_parity", help="where the files and results go")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [measure_run(run, args.data_dir, out) for run in args.runs]
    write_results(out, "export_parity", rows, markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
