#!/usr/bin/env bash
# One process against two (torchrun, gloo on the CPU) at the same global batch, and a second seed of the single
# process for the seed-to-seed spread. Real glyphs: proxy47 (see the data folder's README). Run it with nothing
# else on the machine; each run trains the `fast` preset's settings on the default network for 3 epochs, then
# evaluates on the whole proxy47 test split (plain and with TTA).
#
#   bash benchmarks/experiments/distributed_vs_single.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/emnist}
OUT=${2:-runs/distributed_vs_single}
COMMON=(--split proxy47 --data-dir "$DATA" --preset fast --model glyphnet --epochs 3 --no-progress --overwrite)

python -m glyphkit train "${COMMON[@]}" --batch-size 256 --seed 42 --output-dir "$OUT/one_process_seed42"
python -m glyphkit train "${COMMON[@]}" --batch-size 256 --seed 43 --output-dir "$OUT/one_process_seed43"
python -m torch.distributed.run --standalone --nproc-per-node 2 -m glyphkit train "${COMMON[@]}" \
    --batch-size 128 --seed 42 --output-dir "$OUT/two_processes_seed42"

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
print("| run | processes x batch | proxy47 test acc | balanced acc | with TTA |")
print("|---|---|---|---|---|")
for run in sorted(Path(sys.argv[1]).iterdir()):
    m, c = json.loads((run / "metrics.json").read_text()), json.loads((run / "config.json").read_text())
    print(f"| {run.name} | {c['world_size']} x {c['batch_size']} | {100 * m['accuracy']:.2f}% | "
          f"{100 * m['balanced_accuracy']:.2f}% | {100 * m['tta_metrics']['accuracy']:.2f}% |")
PY
