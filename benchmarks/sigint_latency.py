"""SIGINT at random moments of an mdx command: how each run exits, and how long after the signal.

    .venv/bin/python benchmarks/sigint_latency.py --runs 16 --min 5 --max 24 -- convert RUN --int8 --overwrite --out DIR

Every run should exit 130 with one `error: interrupted` line (docs/reliability.md); anything else is
printed with the end of its stderr. Prints a tally of exit codes and the range of seconds from signal to exit.
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("error: pass the mdx command after --, e.g. -- convert RUN --int8 --overwrite")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--min", type=float, default=5.0, help="earliest signal, seconds after the start")
    parser.add_argument("--max", type=float, default=20.0, help="latest signal, seconds after the start")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv[:split])
    command = [str(Path(sys.executable).with_name("mdx")), *argv[split + 1:]]
    draw = random.Random(args.seed)
    tally: collections.Counter[int] = collections.Counter()
    waits: list[float] = []
    for index in range(args.runs):
        delay = draw.uniform(args.min, args.max)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=600)
        waits.append(time.monotonic() - sent)
        tally[process.returncode] += 1
        print(f"{index}: signal at {delay:.2f} s, exit {process.returncode} {waits[-1]:.2f} s later", flush=True)
        if process.returncode not in (0, 130):
            print(stderr[-3000:], flush=True)
    print(f"exit codes {dict(tally)}; signal to exit {min(waits):.1f}-{max(waits):.1f} s")
    return 0 if set(tally) <= {0, 130} else 1


if __name__ == "__main__":
    raise SystemExit(main())
