"""The text of the agent's merged metrics endpoint (Istio's pilot-agent on :15020). Pure.

Envoy's stats access logger emits Istio's standard metrics under the `istio` stat prefix,
which Envoy's Prometheus output calls `envoy_istio_*`. `istio_names` gives them Istio's
names (`istio_requests_total`, ...) and Istio's value for what Envoy did not know: Envoy
writes an empty value (a missing header or metadata) or `-`; Istio writes `unknown`.
Two labels are left as Envoy wrote them, because there Istio has its own word:
`response_flags` is `-` when there are none (Envoy's %RESPONSE_FLAGS% says the same), and
`grpc_response_status` is empty on traffic that is not gRPC.

`merge` appends families (the agent's own, then the application's) to Envoy's output so
that the whole stays valid Prometheus text format 0.0.4: every family's samples are
together, under one `# TYPE` line, and no family appears twice; a family whose name is
already taken is left out and named, so the caller can say so.

Cost: Envoy's output can be tens of megabytes, so it stays bytes (never decoded) and is
passed through as views of itself; only the istio families are rewritten, each with one
bytes.replace and one regular expression. bench/metrics_rewrite.py measures it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

UNKNOWN = "unknown"

_TYPE = "# TYPE "
_HELP = "# HELP "
_ENVOY_ISTIO = b"envoy_istio_"
_ISTIO = b"istio_"
_ISTIO_TYPE = b"# TYPE " + _ENVOY_ISTIO
# Every family's `# TYPE` line but one at the very start (found apart, so that the search
# starts from a literal and skips ahead).
_TYPE_LINE = re.compile(rb"\n# TYPE ([^ \n]+)")
_FIRST_TYPE_LINE = re.compile(rb"# TYPE ([^ \n]+)")
# A label value that is empty or "-", except in the two labels above. A `="` can only
# open a label value (a quote inside a value is escaped, \"), so the match is exact; the
# lookbehinds run only where `="-?"` matched.
_UNKNOWN_VALUE = re.compile(
    rb'="-?"'
    rb'(?<![{,]response_flags="-")(?<![{,]response_flags="")'
    rb'(?<![{,]grpc_response_status="-")(?<![{,]grpc_response_status="")'
)
_UNKNOWN_TEXT = b'="' + UNKNOWN.encode() + b'"'

Part = bytes | memoryview

VALID_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# Samples a histogram or summary family `f` holds besides `f` itself.
_SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "counter": ("_total",),  # OpenMetrics names a counter family without its _total
}


def istio_names(envoy_text: bytes) -> bytes:
    """Envoy's Prometheus text with every `envoy_istio_*` family under Istio's name and
    with Istio's value for unknown labels; every other byte is left as it is."""
    return b"".join(rename(envoy_text).parts)


@dataclass(frozen=True)
class Renamed:
    parts: list[Part]  # joined, istio_names' answer
    families: set[str]  # every family the text declares, by its name after renaming


def rename(envoy_text: bytes) -> Renamed:
    """istio_names as parts (views into `envoy_text` where nothing changes), with the
    names of the families found on the way.

    Envoy starts every family with its `# TYPE` line and keeps its samples together, so a
    family runs from its `# TYPE` line to the next one."""
    view = memoryview(envoy_text)
    headers: list[tuple[int, bytes]] = []
    first = _FIRST_TYPE_LINE.match(envoy_text)
    if first is not None:
        headers.append((0, first.group(1)))
    headers += [(m.start() + 1, m.group(1)) for m in _TYPE_LINE.finditer(envoy_text)]
    parts: list[Part] = []
    families: set[str] = set()
    done = 0
    for index, (start, name) in enumerate(headers):
        if not name.startswith(_ENVOY_ISTIO):
            families.add(name.decode("ascii", "replace"))
            continue
        families.add(name[len(b"envoy_") :].decode("ascii", "replace"))
        end = headers[index + 1][0] if index + 1 < len(headers) else len(envoy_text)
        if start > done:
            parts.append(view[done:start])
        parts.append(b"# TYPE " + _ISTIO)
        body = _UNKNOWN_VALUE.sub(_UNKNOWN_TEXT, view[start + len(_ISTIO_TYPE) : end])
        parts.append(body.replace(b"\n" + _ENVOY_ISTIO, b"\n" + _ISTIO))
        done = end
    if done < len(envoy_text) or not parts:
        parts.append(view[done:])
    return Renamed(parts, families)


@dataclass
class Family:
    """One metric family: its name, type, help and sample lines, in order."""

    name: str
    type: str = "untyped"
    help: str | None = None
    samples: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = []
        if self.help is not None:
            lines.append(f"{_HELP}{self.name} {self.help}")
        lines.append(f"{_TYPE}{self.name} {self.type}")
        lines.extend(self.samples)
        return "\n".join(lines) + "\n"


def _sample_name(line: str) -> str:
    end = len(line)
    for stop in ("{", " ", "\t"):
        found = line.find(stop)
        if 0 <= found < end:
            end = found
    return line[:end]


def _labels_end(line: str, name: str) -> int:
    """Where the sample's label set ends (after its `}`), quotes and escapes respected."""
    opening = len(name)
    if opening >= len(line) or line[opening] != "{":
        return opening
    quoted = escaped = False
    for index in range(opening + 1, len(line)):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "}" and not quoted:
            return index + 1
    return len(line)


def _without_exemplar(line: str, name: str) -> str:
    """An OpenMetrics sample line without its exemplar (` # {...} value`)."""
    start = line.find(" # ", _labels_end(line, name))
    return line[:start] if start >= 0 else line


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SAMPLE_LINE = re.compile(
    r'[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{\s*(?:[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*"(?:[^"\\\n]|\\.)*"'
    r"\s*,?\s*)*\})?[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?"
)


def _valid_sample(line: str) -> bool:
    match = _SAMPLE_LINE.fullmatch(line)
    if match is None:
        return False
    try:
        float(match.group(1))
    except ValueError:
        return False
    return True


def parse_families(text: str, rejected: list[str] | None = None) -> list[Family]:
    """The families of a Prometheus text exposition (0.0.4, or OpenMetrics' text, of
    which `# UNIT`, `# EOF`, exemplars and the types 0.0.4 lacks are dropped), each
    with all its samples together, in the order families first appear. Lines that are
    not samples (an application answering something else) are left out, and added to
    `rejected` when given."""
    families: dict[str, Family] = {}

    def family(name: str) -> Family:
        if name not in families:
            families[name] = Family(name)
        return families[name]

    def owner(sample: str) -> Family:
        if sample in families:
            return families[sample]
        for kind, suffixes in _SUFFIXES.items():
            for suffix in suffixes:
                base = sample.removesuffix(suffix)
                if base != sample and base in families and families[base].type == kind:
                    return families[base]
        return family(sample)

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                if _METRIC_NAME.fullmatch(parts[2]) is None:
                    if rejected is not None:
                        rejected.append(line)
                    continue
                target = family(parts[2])
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "HELP":
                    target.help = rest
                else:
                    target.type = rest if rest in VALID_TYPES else "untyped"
            continue  # other comments, # UNIT and # EOF
        name = _sample_name(line)
        sample = _without_exemplar(line, name) if " # " in line else line
        if not _valid_sample(sample):
            if rejected is not None:
                rejected.append(line)
            continue
        owner(name).samples.append(sample)
    return list(families.values())


@dataclass(frozen=True)
class Merged:
    parts: list[Part]
    dropped: tuple[str, ...]  # families left out because their name was taken

    @property
    def size(self) -> int:
        return sum(len(part) for part in self.parts)

    def body(self) -> bytes:
        return b"".join(self.parts)


def merge(envoy_text: bytes, *others: Iterable[Family]) -> Merged:
    """Envoy's text with Istio's names, then each group of families in turn; a family
    whose name Envoy or an earlier family took is left out."""
    renamed = rename(envoy_text)
    parts = renamed.parts
    if envoy_text and not envoy_text.endswith(b"\n"):
        parts.append(b"\n")
    taken = renamed.families
    dropped: list[str] = []
    for group in others:
        for item in group:
            if item.name in taken:
                dropped.append(item.name)
                continue
            taken.add(item.name)
            if item.samples:
                parts.append(item.text().encode())
    return Merged(parts, tuple(dropped))


def format_value(value: float) -> str:
    """A sample value as Prometheus' text format writes it."""
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
