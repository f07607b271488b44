"""Summarize a `py-spy record --format raw` profile: where isthmusd spends its time.

Raw output is one collapsed stack per line (`frame;frame;... COUNT`, outermost first).
Self share counts samples whose innermost frame is the function; total share counts
samples with the function anywhere on the stack (once per sample).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _function(frame: str) -> str:
    """`snapshot (isthmus/pilot/profile.py:93)` -> `isthmus/pilot/profile.py:snapshot`."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match.group('func')}"


def summarize(path: Path, top: int = 15) -> str:
    """Text table of the top functions by self and by total share of samples."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    if samples == 0:
        return "no samples"
    lines = [f"{samples} samples", "", "self %  function (innermost frame)"]
    lines += [f"{100 * c / samples:6.1f}  {name}" for name, c in self_counts.most_common(top)]
    # Inclusive shares only for our own code: the event loop frames above it are ~100%.
    ours = Counter(
        {n: c for n, c in total_counts.items() if n.startswith("isthmus/") and "__main__" not in n}
    )
    lines += ["", "total % isthmus function (anywhere on the stack)"]
    lines += [f"{100 * c / samples:6.1f}  {name}" for name, c in ours.most_common(top)]
    return "\n".join(lines)
