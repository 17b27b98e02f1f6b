#!/usr/bin/env bash
# The worked example: the default job on the embedded data, then everything a paper needs from it.
# Run from this directory; it rewrites runs/ and the files next to this script. On 2 CPU cores the
# grid takes about 6 minutes, the comparison about 3, the refined grid about 10 and the activation grid about 12
# (default settings: one worker per core, one thread per training, so the accuracies do not depend on the
# machine's core count). Progress goes to the *.log files (`tail -f grid.log` in another terminal to watch it).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf runs/grid-2x runs/grid-2x-refine runs/grid-2x-activations  # fresh runs: an existing study would be resumed

scalesearch grid --budget 2x 2> grid.log                      # -> runs/grid-2x/{study.db,trials.csv,best.json}
scalesearch compare --from runs/grid-2x 2> compare.log        # -> runs/grid-2x/compare.{json,csv,png,pdf}
scalesearch report --from runs/grid-2x --format md --out report.md      # + the figures beside it
scalesearch report --from runs/grid-2x --format latex --out report.tex
scalesearch report --from runs/grid-2x --format html --out report.html
scalesearch expand --phi 1..7 --from runs/grid-2x --format md --plot family > family.md
# The same grid deciding what φ = 1 leaves open at φ = 2 (the default on a GPU, not on the CPU):
scalesearch grid --budget 2x --refine --out runs/grid-2x-refine 2> grid-refine.log
scalesearch report --from runs/grid-2x-refine --format md --out report-refine.md
scalesearch expand --phi 1..7 --from runs/grid-2x-refine --format md > family-refine.md
# The same grid with the budget on activations (output elements of conv and linear layers) instead of FLOPs:
scalesearch grid --budget 2x --cost activations 2> grid-activations.log   # -> runs/grid-2x-activations/
scalesearch report --from runs/grid-2x-activations --format md --out report-activations.md
