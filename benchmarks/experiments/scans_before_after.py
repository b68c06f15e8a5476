"""Did learning to read pages cost the single scans? The same scans read by glyphkit now and by an earlier commit.

Issue 30 asked that the paper test's 2,000 single scans read no worse once glyphkit read pages; they read 3 fewer
right (90.30% against 90.45%). Two totals over 2,000 glyphs cannot tell a small loss from chance; a paired count can:
the same rendered files and the same model, read by both versions of glyphkit, glyph by glyph. Only the glyphs that
one version reads right and the other wrong say anything, and McNemar's exact test (a two-sided binomial test on
those glyphs) says how often chance alone would split them at least that unevenly. The paper test's own 2,000 scans
are drawn as paper_test.py draws them (the same glyphs, the same seed), and `--more` scans of other test glyphs beside
them. With `--glyphs validation` the same scans are drawn of the run's validation glyphs instead (the glyphs the
experiments that choose glyphkit's settings draw, there in memory): whether a loss on the test scans shows on other
glyphs too.

The earlier commit is checked out into a temporary git worktree and runs as `python -m glyphkit predict RUN SCANS
--output FILE.json` with that checkout first on the path; glyphkit now runs the same command.

    python benchmarks/experiments/scans_before_after.py RUN --data-dir ../shared/emnist --before COMMIT
        [--split proxy47] [--glyphs test] [--more 8000] [--out runs/scans_before_after] [--results PATH]

Writes benchmarks/results/scans_before_after-RUN.json (`--results` to choose). The renders go under --out
(git-ignored `runs/` by default): they are derived from EMNIST and are never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the paper test draws the scans
import paper_test  # noqa: E402

from glyphkit.results import command_line, default_result_path, write_result  # noqa: E402
from glyphkit.scans import render_scan  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def draw_more(bench: paper_test.Bench, taken: np.ndarray, count: int, folder: Path) -> np.ndarray:
    """`count` scans of glyphs the paper test's own scans do not show, drawn with their own random numbers."""
    rng = np.random.default_rng([bench.seed, 1])
    others = np.setdiff1d(np.arange(len(bench.images)), taken)
    chosen = rng.choice(others, size=count, replace=False)
    paper_test.fresh(folder)
    for n, i in enumerate(chosen):
        render_scan(bench.images[i], rng).save(folder / f"{n:05d}.jpg", quality=95)
    return chosen


def read_with(source: Path, run: Path, folder: Path, output: Path) -> tuple[dict[str, str], float]:
    """`glyphkit predict RUN FOLDER` with the glyphkit in `source`: each file name's answer ("" for a file it
    refused), and the command's wall time."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "glyphkit", "predict", str(run), str(folder), "--output", str(output)]
    start = time.perf_counter()
    subprocess.run(command, cwd=source, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    found = json.loads(output.read_text())
    answers = {Path(f["file"]).name: "" for f in found["files"]}
    answers.update({Path(row["file"]).name: row["prediction"] for row in found["predictions"]})
    return answers, seconds


def mcnemar(right_before: np.ndarray, right_after: np.ndarray) -> tuple[int, int, float]:
    """(glyphs right only `before`, right only `after`, McNemar's exact p): two readings' right answers (bool) of the
    same glyphs compared; p is the two-sided binomial test on the glyphs only one of them reads right."""
    only_before, only_after = int((right_before & ~right_after).sum()), int((right_after & ~right_before).sum())
    changed = only_before + only_after
    return only_before, only_after, float(binomtest(only_after, changed, 0.5).pvalue) if changed else 1.0


def compare(truth: list[str], before: list[str], now: list[str]) -> dict:
    """Accuracy of each reading, the glyphs only one of them reads right, and McNemar's exact p-value."""
    right_before = np.array([a == t for a, t in zip(before, truth)])
    right_now = np.array([a == t for a, t in zip(now, truth)])
    only_before, only_now, p_value = mcnemar(right_before, right_now)
    return {
        "glyphs": len(truth),
        "acc_before": float(right_before.mean()),
        "acc_now": float(right_now.mean()),
        "only_before": only_before,
        "only_now": only_now,
        "p_value": p_value,
    }


def pairs_that_moved(truth: list[str], before: list[str], now: list[str], least: int) -> list[tuple[str, str]]:
    """The pairs of characters between which at least `least` glyphs changed answer (one reading right, the other
    reading the pair's other character), most first: where the readings differ."""
    moved: Counter = Counter()
    for t, b, n in zip(truth, before, now):
        if (b == t) != (n == t):
            moved[tuple(sorted((t, n if b == t else b)))] += 1
    return [pair for pair, count in moved.most_common() if count >= least]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--before", required=True, help="the earlier commit whose glyphkit reads the same scans")
    parser.add_argument("--split", default="proxy47")
    parser.add_argument(
        "--glyphs", choices=("test", "validation"), default="test", help="whose glyphs are drawn (default: test)"
    )
    parser.add_argument("--more", type=int, default=8000, help="scans of other glyphs (default: 8000)")
    parser.add_argument("--seed", type=int, default=0, help="the paper test's seed (default: 0)")
    parser.add_argument(
        "--least",
        type=int,
        default=10,
        help="a pair of characters gets its own row when at least "
        "this many glyphs changed answer between them (default: 10)",
    )
    parser.add_argument("--out", default="runs/scans_before_after", help="where the renderings go")
    parser.add_argument("--results", default=None, help="the record's path (default: scans_before_after-RUN.json)")
    args = parser.parse_args()
    run, out = Path(args.run_dir).resolve(), Path(args.out).resolve()
    bench = paper_test.load_bench(argparse.Namespace(**{**vars(args), "run_dir": run, "out": out}), args.glyphs)
    # The paper test's scans part draws its 2,000 scans and 120 lines from one stream of random numbers: the lines
    # are drawn here too (and left unread) so that the scans come out as the paper test's.
    singles, _ = paper_test.render_all(bench.images, out, 2000, 120, np.random.default_rng(args.seed))
    first = "the paper test's scans" if args.glyphs == "test" else "2,000 scans drawn as the paper test's"
    sets = {first: (out / "scans", singles)}
    if args.more:
        more = draw_more(bench, singles, args.more, out / "more")
        sets[f"{args.more:,} scans of other {args.glyphs} glyphs"] = (out / "more", more)

    before_commit = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    readings: dict[str, list[str]] = {"before": [], "now": []}  # each version's answers, set after set
    seconds = {"before": 0.0, "now": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(checkout), before_commit], cwd=REPO, check=True)
        try:
            for name, (folder, ids) in sets.items():
                files = [f"{n:05d}.jpg" for n in range(len(ids))]
                for version, source in (("before", checkout), ("now", REPO)):
                    answers, took = read_with(source, run, folder, out / f"{folder.name}-{version}.json")
                    readings[version] += [answers.get(f, "") for f in files]
                    seconds[version] += took
                    print(f"{name}, {version}: {took:.0f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=REPO, check=False)

    # The rows: each set, all of them, then the same glyphs by true character (the pairs the readings moved glyphs
    # between, and every other character), each a mask over every set's glyphs in reading order.
    truth = np.array([bench.truth[i] for _, ids in sets.values() for i in ids])
    which_set = np.repeat(list(sets), [len(ids) for _, ids in sets.values()])
    groups = {name: which_set == name for name in sets}
    if len(sets) > 1:
        groups["all of them"] = np.ones(len(truth), dtype=bool)
    pairs = pairs_that_moved(list(truth), readings["before"], readings["now"], least=args.least)
    groups |= {f"all of them, `{a}` or `{b}`": np.isin(truth, (a, b)) for a, b in pairs}
    groups["all of them, every other character"] = ~np.isin(truth, [c for pair in pairs for c in pair])
    rows = []
    for name, keep in groups.items():
        picked = np.flatnonzero(keep)
        subset = [[answers[i] for i in picked] for answers in (truth, readings["before"], readings["now"])]
        rows.append({"scans": name, **compare(*subset)})
    for row in rows:
        print(row)
    path = args.results or default_result_path("scans_before_after", run.name)
    write_result(
        path,
        what="Single glyphs rendered as scans (2,000 drawn as the paper test draws its own, and more), read by "
        f"`glyphkit predict` as glyphkit reads them now and as it read them at commit {before_commit}, with the same "
        "model: accuracy of each, the glyphs only one of them reads right, and McNemar's exact two-sided p-value on "
        "those glyphs; then the same glyphs by true character: each pair of characters between which at least "
        "--least glyphs changed answer, and the rest.",
        command=command_line(),
        columns=[
            {"key": "scans", "header": "scans"},
            {"key": "glyphs", "header": "glyphs", "format": "int"},
            {"key": "acc_before", "header": f"read at {before_commit}", "format": "percent"},
            {"key": "acc_now", "header": "read now", "format": "percent"},
            {"key": "only_before", "header": f"right only at {before_commit}", "format": "int"},
            {"key": "only_now", "header": "right only now", "format": "int"},
            {"key": "p_value", "header": "McNemar p", "format": "float4"},
        ],
        rows=rows,
        data=f"{args.split} {args.glyphs} glyphs: 2,000 scans drawn as the paper test draws its own (seed {args.seed}) "
        f"and {args.more:,} more",
        summary={
            "run": str(run),
            "before": before_commit,
            "read_s_before": seconds["before"],
            "read_s_now": seconds["now"],
        },
    )
    print(f"results record: {path}")


if __name__ == "__main__":
    main()
