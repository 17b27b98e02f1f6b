#!/usr/bin/env bash
# The worked example: the default job on the embedded data, then everything a paper needs from it.
# Run from this directory; it rewrites runs/ and the files next to this script. On 2 CPU cores the
# grid takes 15-25 minutes and the comparison about 10.
set -euo pipefail
cd "$(dirname "$0")"

scalesearch grid --budget 2x                                   # -> runs/grid-2x/{study.db,trials.csv,best.json}
scalesearch compare --from runs/grid-2x                        # -> runs/grid-2x/compare.{json,csv,png,pdf}
scalesearch report --from runs/grid-2x --format md --out report.md      # + the figures beside it
scalesearch report --from runs/grid-2x --format latex --out report.tex
scalesearch report --from runs/grid-2x --format html --out report.html
scalesearch expand --phi 1..7 --from runs/grid-2x --format md --plot family > family.md
