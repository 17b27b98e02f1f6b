"""Wall time of `scalesearch expand --phi 0..7 --preset efficientnet`, as a user runs it (fresh process).

    python benchmarks/expand_speed.py [--repeats 3]

Target (issue 2): under 20 s on a 2-core CPU. Each repeat is a new process, so
imports and the per-process cost cache are included every time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

COMMAND = [sys.executable, "-m", "scalesearch", "expand", "--phi", "0..7", "--preset", "efficientnet",
           "--format", "csv"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run(COMMAND, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    import torch

    print(f"command: scalesearch {' '.join(COMMAND[3:])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"seconds per run: {', '.join(f'{t:.1f}' for t in times)} "
          f"(median {statistics.median(times):.1f}, target < 20)")


if __name__ == "__main__":
    main()
