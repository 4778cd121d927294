"""Olive's own example documents, validated by olivepress: accepted, refused, crashed, and why.

    python benchmarks/olive_examples.py [ROOT] [--json] [--problems]

ROOT (default ../shared/olive-examples) holds Olive's `examples/` folders at some tags. A run config is a JSON/YAML
file whose top level is a mapping with `passes`, `pass_flows`, `input_model` or `engine`. Each is validated from
its own folder (documents name their user scripts by relative paths), as `olivepress validate` does. Prints, per
tag: accepted / refused / crashed, the share accepted among the documents whose pass types olivepress has, and
the refusal reasons ranked by the number of documents they occur in. A document refused only because a local file
its example's setup script creates is missing (a model the example trains first, its data) is counted as "refused:
local file missing", a correct refusal; the share is also given without those documents. `--problems` lists every
refused document's lines; `--json` prints the counts as JSON too. docs/olive-compatibility.md holds the results.
"""

import argparse
import json
import os
import re
import sys
import traceback
from collections import Counter
from contextlib import chdir
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from olivepress.api.workflows import load
from olivepress.config.migration import PASS_TYPES
from olivepress.errors import OlivepressError
from olivepress.passes.registry import PassRegistry

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "olive-examples"
RUN_CONFIG_KEYS = {"passes", "pass_flows", "input_model", "engine"}
SUFFIXES = (".json", ".yaml", ".yml")
# A problem line's path, made general: names the document chose, and list indexes, become '*'.
NAMED_SECTIONS = re.compile(r"^(passes|systems|evaluators|search_space)\.[^.:\[]+")
INDEX = re.compile(r"\[\d+\]")
# A problem line about a local file or folder that is not there (what an example's setup script would create).
LOCAL_MISSING = re.compile(r": (no such (file|folder)|user script .+ not found|.+ holds no model\.onnx)(\b|$)")
NOISE = re.compile(r" \(got .*?\)$| \(did you mean '[^']*'\?\)|; (known|it has|one of)[^;]*$|, not .*$")


@dataclass
class Outcome:
    file: Path
    status: str  # accepted, refused, crashed
    passes_known: bool
    problems: list[str] = field(default_factory=list)

    @property
    def local_file_missing(self) -> bool:
        """Refused only because local files are missing: a correct refusal until the example's setup has run."""
        lines = [line for line in self.problems if not line.startswith("... and ")]
        return self.status == "refused" and bool(lines) and all(LOCAL_MISSING.search(line) for line in lines)


def run_configs(root: Path) -> list[Path]:
    found = []
    for file in sorted(root.rglob("*")):
        if file.suffix.lower() in SUFFIXES and file.is_file():
            document = _read(file)
            if isinstance(document, dict) and RUN_CONFIG_KEYS & set(document):
                found.append(file)
    return found


def _read(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
        return json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError):
        return None


def pass_types(document: dict[str, Any]) -> list[str]:
    """The pass types a document names (in `passes` as a mapping or a list), with Olive's older names mapped."""
    passes = document.get("passes")
    entries = passes.values() if isinstance(passes, dict) else passes if isinstance(passes, list) else []
    types = [entry.get("type") for entry in entries if isinstance(entry, dict)]
    return [PASS_TYPES.get(name, name) for name in types if isinstance(name, str)]


def has_passes(names: list[str], registry: PassRegistry) -> bool:
    for name in names:
        try:
            registry.get(name)
        except OlivepressError:
            return False
    return True


def validate(file: Path, registry: PassRegistry) -> Outcome:
    known = has_passes(pass_types(_read(file)), registry)
    with chdir(file.parent):
        try:
            load(file.name)
        except OlivepressError as error:
            return Outcome(file, "refused", known, list(getattr(error, "problems", None) or [str(error)]))
        except Exception:  # a crash is what this benchmark counts
            return Outcome(file, "crashed", known, [traceback.format_exc(limit=-3)])
    return Outcome(file, "accepted", known)


def reason(line: str) -> str:
    """A problem line without its file, line, document-chosen names and values: what many documents share."""
    _, _, rest = line.partition(": ")
    path, _, message = rest.partition(": ")
    path = INDEX.sub("[*]", NAMED_SECTIONS.sub(lambda m: f"{m.group(1)}.*", path))
    path = re.sub(r"^(engine\.search_strategy\.search_space)\.[^.]+", r"\1.*", path)
    return f"{path}: {NOISE.sub('', message)}"


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = Counter(outcome.status for outcome in outcomes)
    with_passes = [outcome for outcome in outcomes if outcome.passes_known]
    accepted = sum(outcome.status == "accepted" for outcome in with_passes)
    missing = sum(outcome.local_file_missing for outcome in with_passes)
    return {"documents": len(outcomes), **{status: counts[status] for status in ("accepted", "refused", "crashed")},
            "with_known_passes": len(with_passes), "accepted_with_known_passes": accepted,
            "refused_local_file_missing": missing,
            "share": round(100 * accepted / len(with_passes), 1) if with_passes else None,
            "share_without_local_file_missing": round(100 * accepted / (len(with_passes) - missing), 1)
            if len(with_passes) > missing else None}


def ranked_reasons(outcomes: list[Outcome], only_known_passes: bool) -> list[tuple[str, int]]:
    reasons: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.status == "refused" and (outcome.passes_known or not only_known_passes):
            reasons.update({reason(line) for line in outcome.problems if not line.startswith("... and ")})
    return reasons.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", action="store_true", help="also print the counts as JSON")
    parser.add_argument("--problems", action="store_true", help="print every refused or crashed document's lines")
    args = parser.parse_args()
    args.root = args.root.resolve()  # the documents are validated from their resolved folders
    registry = PassRegistry.default()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tags = sorted(folder for folder in args.root.iterdir() if folder.is_dir())
    outcomes = {tag.name: [validate(file.resolve(), registry) for file in run_configs(tag)] for tag in tags}
    every = [outcome for group in outcomes.values() for outcome in group]
    for name, group in [*outcomes.items(), ("all", every)]:
        s = summary(group)
        print(f"{name}: {s['documents']} documents: {s['accepted']} accepted, {s['refused']} refused, "
              f"{s['crashed']} crashed; among the {s['with_known_passes']} whose pass types olivepress has: "
              f"{s['accepted_with_known_passes']} accepted ({s['share']}%), {s['refused_local_file_missing']} refused: "
              f"local file missing ({s['share_without_local_file_missing']}% accepted without those)")
    for title, only_known in (("refusal reasons, documents whose pass types olivepress has", True),
                              ("refusal reasons, all documents", False)):
        print(f"\n{title} (documents):")
        for text, count in ranked_reasons(every, only_known):
            print(f"{count:4d}  {text}")
    if args.problems:
        for outcome in every:
            if outcome.status != "accepted":
                status = "refused: local file missing" if outcome.local_file_missing else outcome.status
                print(f"\n{status}: {outcome.file.relative_to(args.root)}")
                print("\n".join(f"    {line}" for line in outcome.problems))
    if args.json:
        print(json.dumps({name: summary(group) for name, group in [*outcomes.items(), ("all", every)]}, indent=2))
    sys.exit(1 if any(outcome.status == "crashed" for outcome in every) else 0)


if __name__ == "__main__":
    main()
