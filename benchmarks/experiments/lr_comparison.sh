#!/usr/bin/env bash
# Is the LR finder's suggestion worth taking? The default network with the `fast` preset's settings, trained for
# 3 epochs on proxy47 at (a) the finder's suggestion, (b) the preset's tuned rate 3e-3 and (c) the original
# specification's 1e-3; then each run's plain accuracy on the whole proxy47 test split. Run it with nothing else
# on the machine. A run whose folder already holds best_model.pth is kept (so a cut-off run can be continued).
#
#   bash benchmarks/experiments/lr_comparison.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/emnist}
OUT=${2:-runs/lr_comparison}
COMMON=(--split proxy47 --data-dir "$DATA" --preset fast --model glyphnet --no-progress)

[ -f "$OUT/finder/lr.json" ] || python -m glyphkit lr-find "${COMMON[@]}" --output-dir "$OUT/finder" --overwrite
SUGGESTION=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['suggestion'])" "$OUT/finder/lr.json")
for run in "suggestion:$SUGGESTION" "tuned:3e-3" "default:1e-3"; do
    name=${run%%:*} lr=${run#*:}
    [ -f "$OUT/$name/best_model.pth" ] || python -m glyphkit train "${COMMON[@]}" --epochs 3 --lr "$lr" \
        --skip-eval --overwrite --output-dir "$OUT/$name"
done

python - "$OUT" "$DATA" <<'PY'
import sys
from glyphkit.inference import load_trained_run
out, data = sys.argv[1:]
print("| learning rate | chosen by | proxy47 test accuracy (plain) |")
print("|---|---|---|")
for name, who in (("suggestion", "the LR finder (valley)"), ("tuned", "the fast preset"),
                  ("default", "the original specification")):
    run = load_trained_run(f"{out}/{name}", data_dir=data)
    accuracy = (run.predictor.logits(run.images).argmax(1) == run.labels).float().mean().item()
    print(f"| {run.config.lr:.2e} | {who} | {100 * accuracy:.2f}% |", flush=True)
PY
