"""Olive's own example documents, validated by olivepress: accepted, refused, crashed, and why.

    python benchmarks/olive_examples.py [ROOT] [--json] [--problems]

ROOT (default ../shared/olive-examples) holds Olive's `examples/` folders at some tags. A run config is a JSON/YAML
file whose top level is a mapping with `passes`, `pass_flows`, `input_model` or `engine`. Each is validated from
its own folder (documents name their user scripts by relative paths), as `olivepress validate` does. Prints, per
tag: accepted / refused / crashed, and, among the documents whose pass types olivepress has, the share accepted
(raw) and the share accepted among the documents Olive could run as written. A refused document whose every problem
is one Olive would also refuse, or one the example's own setup fixes, is not one Olive could run as written:
  - placeholder: a template's unfilled placeholders ('<model_name_placeholder>', '<<str: model_path>>'), which the
    example's generator script fills in (choosing among the template's passes: a template's other problems are
    counted beside it, and ranked with the others);
  - local file missing: a model, data or script file the example's setup makes (a model it trains first, a
    requirements file beside its notebook), or a script named from the folder the example's generator runs in;
  - undefined reference: a data config, pass or evaluator the document names but does not define.
Every other refusal is an olivepress gap. The documents refused for those reasons are listed with their reasons, then
the refusal reasons are ranked by the number of documents they occur in. `--problems` lists every refused document's
lines; `--json` prints the counts as JSON too. docs/benchmarks.md holds the results.
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
# Problems Olive would also have, or that the example's setup fixes: the class of a problem line, by what it says.
OLIVE_TOO = {
    "placeholder": re.compile(r": '[^']*' is a template's placeholder"),
    # a local file or folder that is not there (what an example's setup script would create)
    "local file missing": re.compile(r": (.+: no such (file|folder)|user script .+ not found|.+ holds no model\.onnx)"
                                     r"(\b|$)"),
    "undefined reference": re.compile(r": no (data config|pass|evaluator|system) named '"),
}
NOISE = re.compile(r" \(got .*?\)$| \(did you mean '[^']*'\?\)|; (known|it has|one of)[^;]*$|, not .*$")


@dataclass
class Outcome:
    file: Path
    status: str  # accepted, refused, crashed
    passes_known: bool
    problems: list[str] = field(default_factory=list)

    @property
    def olive_too(self) -> list[str]:
        """The reasons Olive would refuse it too (or its example's setup fixes it), when every problem is one of those
        or the document is a template with placeholders (its generator script writes the document that runs, choosing
        among its passes); [] for an accepted document and for any other refusal (an olivepress gap)."""
        kinds = self._kinds()
        if not kinds or (None in kinds and "placeholder" not in kinds):
            return []
        return sorted({kind for kind in kinds if kind is not None}, key=list(OLIVE_TOO).index)

    @property
    def other_problems(self) -> int:
        """A template's problems that are none of OLIVE_TOO's (what olivepress might still refuse once it is filled)."""
        return self._kinds().count(None)

    def _kinds(self) -> list[str | None]:
        lines = [line for line in self.problems if not line.startswith("... and ")]
        if self.status != "refused":
            return []
        return [next((kind for kind, pattern in OLIVE_TOO.items() if pattern.search(line)), None) for line in lines]


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
    olive_too = [outcome for outcome in with_passes if outcome.olive_too]
    runnable = len(with_passes) - len(olive_too)  # documents Olive could run as written
    return {"documents": len(outcomes), **{status: counts[status] for status in ("accepted", "refused", "crashed")},
            "with_known_passes": len(with_passes), "accepted_with_known_passes": accepted,
            "share": round(100 * accepted / len(with_passes), 1) if with_passes else None,
            "refused_as_olive_would": len(olive_too),
            "refused_as_olive_would_by_reason": dict(Counter(kind for outcome in olive_too
                                                             for kind in outcome.olive_too)),
            "runnable_as_written": runnable,
            "share_of_runnable_as_written": round(100 * accepted / runnable, 1) if runnable else None,
            "olivepress_gaps": runnable - accepted}


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
              f"{s['accepted_with_known_passes']} accepted ({s['share']}%); {s['refused_as_olive_would']} refused as "
              f"Olive would (or fixed by the example's setup), so {s['accepted_with_known_passes']} of the "
              f"{s['runnable_as_written']} documents Olive could run as written accepted "
              f"({s['share_of_runnable_as_written']}%), {s['olivepress_gaps']} olivepress gaps")
    print("\nrefused as Olive would, or fixed by the example's setup (documents whose pass types olivepress has):")
    for outcome in every:
        if outcome.passes_known and outcome.olive_too:
            count = outcome.other_problems
            others = f" (a template; {count} other problem{'s' if count > 1 else ''}: see --problems)" if count else ""
            print(f"    {outcome.file.relative_to(args.root)}: {', '.join(outcome.olive_too)}{others}")
    for title, only_known in (("refusal reasons, documents whose pass types olivepress has", True),
                              ("refusal reasons, all documents", False)):
        print(f"\n{title} (documents):")
        for text, count in ranked_reasons(every, only_known):
            print(f"{count:4d}  {text}")
    if args.problems:
        for outcome in every:
            if outcome.status != "accepted":
                status = f"refused as Olive would ({', '.join(outcome.olive_too)})" if outcome.olive_too \
                    else outcome.status
                print(f"\n{status}: {outcome.file.relative_to(args.root)}")
                print("\n".join(f"    {line}" for line in outcome.problems))
    if args.json:
        print(json.dumps({name: summary(group) for name, group in [*outcomes.items(), ("all", every)]}, indent=2))
    sys.exit(1 if any(outcome.status == "crashed" for outcome in every) else 0)


if __name__ == "__main__":
    main()
