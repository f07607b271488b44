"""A strict reader of Prometheus' text exposition format 0.0.4, for tests.

`problems(text)` lists what Prometheus' parser, or a reader that trusts the format's
rules, would object to: malformed lines, a `# TYPE` line after samples of its family or
twice, a family whose samples are not together, a series given twice, a histogram bucket
without `le` or a histogram series without its `+Inf` bucket. `samples(text, name)` reads
the samples of one name, for tests that check labels and values.
"""

from __future__ import annotations

import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABELS = r'\{(?:\s*[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"\s*,?)*\s*\}'
_SAMPLE = re.compile(rf"^({_NAME})({_LABELS})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_MEMBERS = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def _value_ok(text: str) -> bool:
    if text in ("+Inf", "-Inf", "NaN"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _family_of(name: str, types: dict[str, str]) -> str:
    for family, kind in types.items():
        for suffix in _MEMBERS.get(kind, ("",)):
            if name == family + suffix:
                return family
    return name


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples called `name` (a counter, `h_bucket`, ...) in `text`, in order: each its
    labels (values as written, escapes kept) and its value. Lines that are not samples are
    skipped; `problems` says what is wrong with them."""
    found = []
    for line in text.split("\n"):
        match = _SAMPLE.match(line)
        if match is not None and match[1] == name and _value_ok(match[3]):
            found.append((dict(_LABEL.findall(match[2] or "")), float(match[3])))
    return found


def problems(text: str) -> list[str]:
    """Everything wrong with `text` as Prometheus text format 0.0.4 (empty: valid)."""
    found: list[str] = []
    types: dict[str, str] = {}
    helps: set[str] = set()
    finished: set[str] = set()
    current: str | None = None
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    histograms: dict[tuple[str, tuple[tuple[str, str], ...]], bool] = {}

    def enter(family: str, where: str) -> None:
        nonlocal current
        if family != current:
            if family in finished:
                found.append(f"{where}: family {family} appears again after other families")
            if current is not None:
                finished.add(current)
            current = family

    for number, line in enumerate(text.split("\n"), 1):
        where = f"line {number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                name = parts[2]
                if not re.fullmatch(_NAME, name):
                    found.append(f"{where}: invalid metric name {name!r}")
                    continue
                if parts[1] == "TYPE":
                    kind = parts[3].strip() if len(parts) > 3 else ""
                    if kind not in _TYPES:
                        found.append(f"{where}: unknown type {kind!r} for {name}")
                    if name in types:
                        found.append(f"{where}: second # TYPE line for {name}")
                    members = {name + suffix for suffix in _MEMBERS.get(kind, ("",))}
                    if any(sampled in members for sampled, _ in series):
                        found.append(f"{where}: # TYPE for {name} after its samples")
                    types[name] = kind
                else:
                    if name in helps:
                        found.append(f"{where}: second # HELP line for {name}")
                    helps.add(name)
                enter(name, where)
            continue
        match = _SAMPLE.match(line)
        if match is None:
            found.append(f"{where}: not a sample line: {line[:120]!r}")
            continue
        name, label_text, value = match.groups()
        if not _value_ok(value):
            found.append(f"{where}: invalid value {value!r}")
        labels = tuple(sorted(_LABEL.findall(label_text or "")))
        if len({k for k, _ in labels}) != len(labels):
            found.append(f"{where}: a label is given twice")
        if (name, labels) in series:
            found.append(f"{where}: series {name}{label_text or ''} given twice")
        series.add((name, labels))
        family = _family_of(name, types)
        enter(family, where)
        if types.get(family) == "histogram" and name == family + "_bucket":
            le = dict(labels).get("le")
            if le is None:
                found.append(f"{where}: histogram bucket without le")
                continue
            key = (family, tuple(kv for kv in labels if kv[0] != "le"))
            histograms[key] = histograms.get(key, False) or le == "+Inf"
    for (family, labels), has_inf in histograms.items():
        if not has_inf:
            found.append(f"histogram {family}{dict(labels)} has no +Inf bucket")
    return found
