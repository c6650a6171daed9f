"""Summarise a py-spy raw (collapsed) profile: top functions by self and inclusive samples.

py-spy record -f raw -o prof.txt -- python bench/worker.py '{...}'
python bench/profile_top.py prof.txt [--top 25] [--grep airflow_provider_delix] [--skip-imports]

``--skip-imports`` drops the samples taken while a module was being imported (a stack through
``_find_and_load``): a short run spends most of its samples importing Airflow and pandas.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def summarise(path: str, *, skip_imports: bool = False) -> tuple[int, Counter[str], Counter[str]]:
    total, own, inclusive = 0, Counter[str](), Counter[str]()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            if skip_imports and "_find_and_load" in stack:
                continue
            count = int(count_text)
            frames = [_name(f) for f in stack.split(";")[1:]]  # [0] is the thread
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count
    return total, own, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", default="")
    parser.add_argument("--skip-imports", action="store_true")
    args = parser.parse_args()
    total, own, inclusive = summarise(args.profile, skip_imports=args.skip_imports)
    print(f"{total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"-- top by {title}")
        shown = 0
        for name, count in counter.most_common():
            if args.grep and args.grep not in name:
                continue
            print(f"{count / total:6.1%}  {name}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
