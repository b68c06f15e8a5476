"""Every table glyphkit shows: functions take results and return a pandas DataFrame (a notebook cell's result).

The counterpart of glyphkit.plots for numbers people read rather than look at.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from glyphkit.data import GlyphData, pixel_stats
from glyphkit.interpret import AMBIGUOUS_GROUPS, TOP_K, ConfusionPair, Interpretation, groups_present


def sizes_table(data: GlyphData) -> pd.DataFrame:
    """Images in train / validation / test, and each part's share."""
    sizes = data.sizes()
    total = sum(sizes.values())
    return pd.DataFrame({"images": sizes, "share": {k: f"{100 * v / total:.1f} %" for k, v in sizes.items()}})


def pixel_statistics(data: GlyphData) -> pd.DataFrame:
    """Per part: mean and std of pixels in [0, 1] (training's mean/std normalise every input), the share of
    ink pixels (> 0.5) and the mean ink per glyph."""
    rows = {}
    for part in ("train", "val", "test"):
        images, _ = data.part(part)
        if not len(images):
            continue
        mean, std = pixel_stats(images)
        ink = images > 127
        rows[part] = {
            "mean": round(mean, 4),
            "std": round(std, 4),
            "ink pixels": f"{100 * ink.float().mean():.1f} %",
            "ink pixels per glyph": round(float(ink.sum((1, 2)).float().mean()), 1),
        }
    return pd.DataFrame(rows).T


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The headline numbers of metrics.json (plain, and with TTA when it ran), in percent."""
    keys = ("accuracy", "balanced_accuracy", f"top{TOP_K}_accuracy")
    rows = {k: metrics[k] for k in keys if k in metrics}
    table = pd.DataFrame({"plain": rows})
    if metrics.get("tta_metrics"):
        table["with TTA"] = pd.Series({k: metrics["tta_metrics"].get(k) for k in rows})
    table.index.name = f"{metrics.get('split', '')} test ({metrics.get('num_test_images', 0):,} images)"
    return (table * 100).round(2).astype(str) + " %"


def class_prior_table(by_prior: dict[str, Interpretation]) -> pd.DataFrame:
    """Accuracy and balanced accuracy side by side, one column per class prior (Interpretation.by_class_prior)."""
    table = pd.DataFrame(
        {prior: {k: v for k, v in interp.summary().items() if "top" not in k} for prior, interp in by_prior.items()}
    )
    table.columns.name = "class prior"
    return (table * 100).round(2).astype(str) + " %"


def lookalike_recall_table(
    by_prior: dict[str, Interpretation], groups: Sequence[str] = AMBIGUOUS_GROUPS
) -> pd.DataFrame:
    """Recall of each character of the look-alike groups the split has (interpret.AMBIGUOUS_GROUPS), one column
    per class prior, with its test images: where the prior moves answers between look-alikes."""
    first = next(iter(by_prior.values()))
    rows = []
    for group in groups_present(first.classes, groups):
        for ch in group:
            k = first.classes.index(ch)
            rows.append(
                {
                    "group": group,
                    "character": ch,
                    "test images": int((first.labels == k).sum()),
                    **{f"recall, {p}": f"{100 * i.per_class_accuracy()[k]:.1f} %" for p, i in by_prior.items()},
                }
            )
    return pd.DataFrame(rows).set_index(["group", "character"])


def confusions_table(pairs: Sequence[ConfusionPair]) -> pd.DataFrame:
    """Confusion pairs (Interpretation.top_confusions), ranked."""
    return pd.DataFrame(
        [
            {
                "true": p.true,
                "predicted": p.pred,
                "count": p.count,
                "share of true": f"{100 * p.share:.1f} %",
                "look-alike": "yes" if p.ambiguous else "",
            }
            for p in pairs
        ],
        index=pd.RangeIndex(1, len(pairs) + 1, name="rank"),
    )


def ambiguity_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Interpretation.ambiguity_summary()'s errors per look-alike group."""
    errors = max(summary["errors"], 1)
    return pd.DataFrame(
        [
            {
                "group": row["group"],
                "errors": row["errors"],
                "share of all errors": f"{100 * row['errors'] / errors:.1f} %",
            }
            for row in summary["per_group"]
        ]
    )


def predictions_table(results: Sequence) -> pd.DataFrame:
    """What `glyphkit.predict.predict` read: per file the text (or the character), the lowest confidence among its
    glyphs, the top guesses of a single glyph, or why the file could not be read."""
    rows = []
    for r in results:
        glyphs = r.glyphs
        top = ", ".join(f"{c} {p:.2f}" for c, p in glyphs[0].top[:3]) if len(glyphs) == 1 else ""
        rows.append(
            {
                "file": Path(r.file).name,
                "read": r.error or r.text,
                "glyphs": len(glyphs),
                "lowest confidence": round(min((g.confidence for g in glyphs), default=0.0), 3),
                "top 3": top,
            }
        )
    return pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1))


def texts_table(readings: dict[str, Sequence]) -> pd.DataFrame:
    """The same files read in several ways (a name -> `predict`'s results, files in the same order): per file the
    text each way read (or why the file could not be read)."""
    columns = {name: [r.error or r.text for r in results] for name, results in readings.items()}
    files = [Path(r.file).name for r in next(iter(readings.values()), [])]
    return pd.DataFrame({"file": files, **columns}, index=pd.RangeIndex(1, len(files) + 1))


def run_folder_table(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The files in a run folder and their sizes."""
    folder = Path(run_dir)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    table = pd.DataFrame({"file": [p.name for p in files], "KiB": [round(p.stat().st_size / 1024, 1) for p in files]})
    table.index = pd.RangeIndex(1, len(files) + 1)
    table.columns.name = str(folder.resolve())
    return table
