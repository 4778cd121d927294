"""benchmarks/olive_examples.py: which refusals are ones Olive would make too (or the example's setup fixes), and the
shares it prints."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

from olive_examples import Outcome, summary  # noqa: E402

MISSING = "a.json:2: input_model.model_path: models/m.pt: no such file"
PLACEHOLDER = "t.json:4: input_model.model_path: '<model_name_placeholder>' is a template's placeholder, not filled in"
UNDEFINED = "q.json:9: passes.lora.config.train_data_config: no data config named 'oasst1_train' in 'data_configs'"
GAP = "b.json:9: passes.p.use_gqa: unknown key 'use_gqa'"


def test_refusals_olive_would_make_too_are_told_apart_from_olivepress_gaps():
    missing = Outcome(Path("a.json"), "refused", True, [MISSING])
    template = Outcome(Path("t.json"), "refused", True, [PLACEHOLDER, GAP])  # a template: its generator edits it
    undefined = Outcome(Path("q.json"), "refused", True, [UNDEFINED, "... and 2 more"])
    gap = Outcome(Path("b.json"), "refused", True, [MISSING, GAP])
    accepted = Outcome(Path("c.json"), "accepted", True)
    unknown_pass = Outcome(Path("d.json"), "refused", False, [MISSING])
    assert [outcome.olive_too for outcome in (missing, template, undefined, gap, accepted)] == [
        ["local file missing"], ["placeholder"], ["undefined reference"], [], []]
    assert template.other_problems == 1
    counts = summary([missing, template, undefined, gap, accepted, unknown_pass])
    assert (counts["with_known_passes"], counts["accepted_with_known_passes"], counts["share"]) == (5, 1, 20.0)
    assert (counts["refused_as_olive_would"], counts["runnable_as_written"]) == (3, 2)
    assert (counts["share_of_runnable_as_written"], counts["olivepress_gaps"]) == (50.0, 1)
    assert counts["refused_as_olive_would_by_reason"] == {"local file missing": 1, "placeholder": 1,
                                                          "undefined reference": 1}
