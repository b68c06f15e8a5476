"""Which page-reading step costs the single scans? Each one switched off in turn, on validation glyphs.

Since glyphkit learnt to read pages, a scan of one glyph on plain paper reads a little worse (scans_before_after.py:
0.27 points on 10,000 test scans, all of it between O and 0 and between I and 1). Three steps added for pages change
the ink of such a scan: contrast under INK_FLOOR is dropped as paper texture, a large image is blurred by up to
NOISE_SIGMA before its ink is measured, and the strokes of a glyph magnified more than SOFT_UPSCALE times are toned
(SOFT_EDGE, SOFT_CORE). Each is switched off alone, then all three together, or the toning is kept for glyphs
magnified more (SETTINGS). The run's **validation** glyphs (the paper test reads the test glyphs; a setting must not
be chosen on them) are read on plain paper and under the conditions of a real note, each image under every setting,
so the differences are paired: the glyphs only one of two readings gets right are counted, with McNemar's exact test
(scipy's two-sided binomial test on them).

A step is changed in glyphkit only if, on validation drawings other than the ones it was picked on (another
`--seed`), that reads the plain scans better, all the images pooled better, and no condition significantly worse
(McNemar p < 0.05).

    python benchmarks/experiments/scan_steps.py RUN --data-dir ../shared/emnist [--plain 8000] [--count 1500]
        [--conditions jpeg,small,...] [--settings "glyphkit as shipped,no ink floor,..."] [--workers 2]
        [--seed 13] [--results PATH]

Writes benchmarks/results/scan_steps-RUN.json (`--results` to choose). The renderings are held in memory: they are
derived from EMNIST and never committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scans_before_after import mcnemar  # beside this script, as is validation_reads
from validation_reads import ValidationDrawings, draw_validation  # beside this script: drawn and read

from glyphkit import preprocess
from glyphkit.results import command_line, default_result_path, write_result
from glyphkit.scans import CONDITION_NAMES

OTHERS = "jpeg,small,ruled,squared,shadow"  # the conditions the three steps were made for
UNTONED = {"SOFT_EDGE": 0.0, "SOFT_CORE": 1.0}  # a magnified glyph's ink read as it is
SETTINGS = {  # each reading: glyphkit.preprocess's constants changed from the shipped ones
    "glyphkit as shipped": {},
    "no ink floor": {"INK_FLOOR": 0.0},
    "no noise blur": {"NOISE_SIGMA": 0.0},
    "magnified strokes untoned": UNTONED,
    "all three off": {"INK_FLOOR": 0.0, "NOISE_SIGMA": 0.0, **UNTONED},
    # Only glyphs magnified more than this are toned (was 2): a plain scan's glyph drawn 40-60 px high is magnified
    # about 2 to 3 times, small writing more.
    "toned above 2.5x": {"SOFT_UPSCALE": 2.5},
    "toned above 3x": {"SOFT_UPSCALE": 3.0},
    "toned above 4x": {"SOFT_UPSCALE": 4.0},
    "no ink floor + toned above 3x": {"INK_FLOOR": 0.0, "SOFT_UPSCALE": 3.0},
}
FIRST = "glyphkit as shipped,no ink floor,no noise blur,magnified strokes untoned,all three off"


def read_all(
    samples: dict[str, ValidationDrawings], settings: list[str], workers: int
) -> dict[str, dict[str, np.ndarray]]:
    """Each setting's predictions (int [N]) for each condition's images (`samples`: condition -> its drawings)."""
    shipped = {name: getattr(preprocess, name) for change in SETTINGS.values() for name in change}
    predictions = {}
    for setting in settings:
        for name, value in {**shipped, **SETTINGS[setting]}.items():
            setattr(preprocess, name, value)
        predictions[setting] = {c: s.predict(s.read(c, workers)) for c, s in samples.items()}
        shown = {c: f"{np.mean(p == samples[c].labels):.4f}" for c, p in predictions[setting].items()}
        print(setting, shown, flush=True)
    for name, value in shipped.items():
        setattr(preprocess, name, value)
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--plain", type=int, default=8000, help="validation glyphs drawn on plain paper (8,000)")
    parser.add_argument("--count", type=int, default=1500, help="validation glyphs drawn under each other condition")
    parser.add_argument("--conditions", default=OTHERS, help=f"the other conditions drawn (default: {OTHERS})")
    parser.add_argument("--settings", default=FIRST, help=f"the readings, from SETTINGS (default: {FIRST})")
    parser.add_argument("--workers", type=int, default=2, help="processes reading the images (default: 2)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--results", default=None, help="the record's path (default: scan_steps-RUN.json)")
    args = parser.parse_args()
    run = Path(args.run_dir)
    others = tuple(args.conditions.split(","))
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS] + [c for c in others if c not in CONDITION_NAMES]
    if unknown or settings[0] != "glyphkit as shipped":
        parser.error(f"unknown settings or conditions {unknown}, or the first setting is not glyphkit as shipped")
    plain = draw_validation(run, args.data_dir, ("plain",), args.plain, args.seed)
    drawn = draw_validation(run, args.data_dir, others, args.count, args.seed + 1)
    samples = {"plain": plain, **dict.fromkeys(others, drawn)}
    conditions = tuple(samples)
    predictions = read_all(samples, settings, args.workers)

    truth = plain.labels
    shipped = predictions["glyphkit as shipped"]
    rows = [{"setting": "28x28 arrays", **{c: s.accuracy(s.glyphs) for c, s in samples.items()}}]
    for setting, read in predictions.items():
        right = {c: read[c] == s.labels for c, s in samples.items()}
        row = {"setting": setting, **{c: float(r.mean()) for c, r in right.items()}}
        row["all"] = float(np.concatenate(list(right.values())).mean())
        if setting != "glyphkit as shipped":
            counts = {c: mcnemar(shipped[c] == s.labels, right[c]) for c, s in samples.items()}
            row.update(zip(("lost", "gained", "p"), counts["plain"]))
            row["worst"] = worst_loss(counts)
        rows.append(row)
    path = args.results or default_result_path("scan_steps", run.name)
    write_result(
        path,
        what="Validation glyphs read with each page-reading step switched off in turn: accuracy on plain paper and "
        "on the conditions the steps were made for (an image refused as blank counts as read wrong); for plain "
        "paper, the glyphs glyphkit as shipped reads right and the setting wrong (lost), the other way (gained), "
        "and McNemar's exact p; all images: every condition's images pooled; the surest loss: of the conditions the "
        "setting reads fewer right than glyphkit as shipped, the one with the smallest p.",
        command=command_line(),
        columns=[
            {"key": "setting", "header": "reading"},
            *({"key": c, "header": CONDITION_NAMES[c], "format": "percent"} for c in conditions),
            {"key": "all", "header": "all images", "format": "percent"},
            {"key": "lost", "header": "plain: lost"},
            {"key": "gained", "header": "plain: gained"},
            {"key": "p", "header": "McNemar p", "format": "float2"},
            {"key": "worst", "header": "the surest loss: condition, lost, gained, p"},
        ],
        rows=rows,
        data=f"{plain.split} validation glyphs: {len(truth):,} on plain paper, {args.count:,} under each other "
        "condition",
        summary={
            "plain_glyphs": int(len(truth)),
            "glyphs_per_other_condition": args.count,
            "run": str(run),
        },
    )
    print(f"results record: {path}")


def worst_loss(counts: dict[str, tuple[int, int, float]]) -> str:
    """Of the conditions a setting reads fewer right than glyphkit as shipped (counts: condition -> mcnemar's), the
    one chance explains least, as "condition: lost, gained, p"; "none" when it reads none fewer right."""
    losses = {c: v for c, v in counts.items() if v[0] > v[1]}
    if not losses:
        return "none"
    condition, (lost, gained, p) = min(losses.items(), key=lambda item: item[1][2])
    return f"{condition}: {lost}, {gained}, {p:.2f}"


if __name__ == "__main__":
    main()
