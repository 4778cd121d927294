"""Search: the space and its checks, each sampler's points, execution orders, failures, limits, goals, the
local process pool, and an end-to-end search over ModelBuilder options on a tiny Llama (also on Ray).

Most tests search over `Knobs`, a planted pass defined here: it writes its parameters into knobs.json,
and the custom metric `planted` scores them, so a candidate costs milliseconds and every answer is known.
"""

import itertools
import json
import re
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from conftest import builder_workflow
from pydantic import Field, ValidationError, model_validator

from olivepress.config.sections import MetricConfig, MetricKind
from olivepress.config.source import SourceDocument
from olivepress.engine.search.executors import InlineExecutor, executors, register_executor
from olivepress.engine.search.order import stages
from olivepress.engine.search.samplers import (
    RandomSampler,
    SequentialSampler,
    TpeSampler,
    register_sampler,
    samplers,
)
from olivepress.evaluation.metrics import metric_types, register_metric
from olivepress.evaluation.objectives import SubMetric
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import validate_document
from olivepress.workflow.space import build_space


class KnobsConfig(PassConfig):
    search_defaults = {"x": (1, 2)}

    x: int = Field(1, ge=1, description="A planted knob; 3 makes the pass fail.")
    y: Literal["a", "b"] = Field("a", description="Another knob.")
    z: int = Field(0, le=10, description="A knob the other two bound: x * z must stay below 20.")

    @model_validator(mode="after")
    def _bounded(self) -> "KnobsConfig":
        if self.x * self.z >= 20:
            raise ValueError("x * z must stay below 20")
        return self


class Knobs(Pass[HfModel, KnobsConfig]):
    name = "Knobs"
    description = "Write the knobs into knobs.json (planted for search tests)."
    accepts = ("hf",)
    produces = "hf"
    Config = KnobsConfig

    def run(self, model: HfModel, config: KnobsConfig, context: PassContext) -> HfModel:
        if config.x == 3:
            raise RuntimeError("x=3 is planted to fail")
        knobs = json.loads((model.path / "knobs.json").read_text())
        (context.output_dir / "config.json").write_text("{}")
        (context.output_dir / "knobs.json").write_text(json.dumps({**knobs, **config.model_dump()}))
        return HfModel(path=context.output_dir)


class OtherKnobs(Knobs):
    name = "OtherKnobs"
    description = "Knobs, under another name: an alternative pass at a step."

    def run(self, model: HfModel, config: KnobsConfig, context: PassContext) -> HfModel:
        output = super().run(model, config, context)
        knobs = json.loads((output.path / "knobs.json").read_text())
        (output.path / "knobs.json").write_text(json.dumps({**knobs, "other": True}))
        return output


def planted(model, data_config, calls: str) -> dict[str, float]:
    """quality (higher is better) and cost (lower is better); y=b dominates y=a at the same x."""
    with open(calls, "a") as log:
        log.write(f"{model.path}\n")
    knobs = json.loads((model.path / "knobs.json").read_text())
    x, b = knobs.get("x", 0), knobs.get("y") == "b"
    return {"quality": 10 * x + 5 * b + 100 * knobs.get("other", False), "cost": x * x - 0.5 * b}


@pytest.fixture
def knobs_doc(tmp_path):
    """A search document over Knobs (x in 1..4, y in a/b by default); `calls` counts the metric's calls."""
    source = tmp_path / "input"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "knobs.json").write_text("{}")
    calls = tmp_path / "calls.txt"
    calls.touch()

    def make(space=None, passes=None, **strategy) -> dict:
        return {
            "input_model": {"type": "HfModel", "model_path": str(source)},
            "evaluators": {"planted": {"metrics": [{
                "name": "knobs", "type": "custom",
                "user_config": {"user_script": "test_search", "evaluate_func": "planted",
                                "evaluate_func_kwargs": {"calls": str(calls)}},
                "sub_types": [{"name": "quality", "priority": 1, "higher_is_better": True},
                              {"name": "cost", "priority": 2, "higher_is_better": False}],
            }]}},
            "passes": passes or {"knobs": {"type": "test_search:Knobs"}},
            "engine": {"evaluator": "planted", "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"),
                       "search_strategy": {"search_space": space if space is not None else
                                           {"knobs": {"x": [1, 2, 3, 4], "y": ["a", "b"]}}, **strategy}},
        }

    make.calls = calls
    return make


def footprint(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "footprint.json").read_text())


def load(document: dict):
    return validate_document(SourceDocument(document, "doc.json"), PassRegistry.default())


def space_of(document: dict):
    workflow = load(document)
    from olivepress.workflow.space import strategy_of

    return build_space(strategy_of(workflow.config.engine), workflow.steps, "hf", workflow.registry)


# ------------------------------------------------------------------ the space and its checks


def test_the_space_takes_document_lists_then_each_pass_default_space(knobs_doc):
    space = space_of(knobs_doc({"knobs": {"y": ["a", "b"]}}))
    assert [(d.name, d.values, d.from_document) for d in space.dimensions] == [
        ("knobs.y", ("a", "b"), True), ("knobs.x", (1, 2), False)]  # x: Knobs' own default space
    assert space.size == 4 and space.describe((1, 0)) == {"knobs": {"y": "b", "x": 1}}
    assert [d.name for d in space_of(knobs_doc({"knobs": {"y": ["a"]}}, include_pass_params=False)).dimensions] == ["knobs.y"]
    doc = knobs_doc({"knobs": {"y": ["a"]}}, passes={"knobs": {"type": "test_search:Knobs", "x": 2}})
    assert [d.name for d in space_of(doc).dimensions] == ["knobs.y"]  # a value the document sets is not searched


def test_invalid_combinations_are_skipped_and_the_rest_enumerated_in_order(knobs_doc):
    space = space_of(knobs_doc({"knobs": {"x": [1, 4], "z": [0, 5]}}))
    assert list(space.points()) == list(itertools.product(range(2), range(2)))
    assert [space.is_valid(p) for p in space.points()] == [True, True, True, False]  # x=4, z=5: 20
    assert [space.point_at(n) for n in range(4)] == list(space.points())
    steps = space.configure((1, 0))
    assert (steps[0].config.x, steps[0].config.z) == (4, 0)


@pytest.mark.parametrize("space, problem", [
    ({"knbs": {"x": [1]}}, "engine.search_strategy.search_space.knbs: no pass named 'knbs' in 'passes' (did you mean 'knobs'?)"),
    ({"knobs": {"w": [1]}}, "engine.search_strategy.search_space.knobs.w: Knobs has no parameter 'w'"),
    ({"knobs": {"x": []}}, "engine.search_strategy.search_space.knobs.x: an empty list has no value to try"),
    ({"knobs": {"x": [1, 0]}}, "engine.search_strategy.search_space.knobs.x[1]: 0 is never valid: passes.knobs.x: "
                               "Input should be greater than or equal to 1"),
    ({"knobs": {"x": [4, 5], "z": [5, 10]}}, "engine.search_strategy.search_space: the search space has no valid point: "
                                              "passes.knobs: x * z must stay below 20"),
    ({"knobs": {"type": ["OnnxMatMulNBits"]}}, "engine.search_strategy.search_space: the search space has no valid "
                                               "point: passes.knobs: OnnxMatMulNBits takes onnx models, but the input "
                                               "model is an hf model"),
])
def test_a_bad_search_space_is_refused_before_any_pass_runs(knobs_doc, write_doc, cli, tmp_path, space, problem):
    code, out, err = cli("run", "--config", write_doc(knobs_doc(space)))
    assert code == 2 and out == ""
    assert problem in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cache").exists()


def test_a_search_needs_an_evaluator_and_objectives_it_makes(knobs_doc, write_doc, cli, tmp_path):
    doc = knobs_doc()
    del doc["engine"]["evaluator"]
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 2
    assert "engine.search_strategy: a search compares candidates by their metrics: set engine.evaluator (one of: planted)" in err
    code, _, err = cli("run", "--config", write_doc(knobs_doc(objectives=["knobs-quality", "knobs-costs"])))
    assert code == 2
    assert ("engine.search_strategy.objectives[1]: evaluator 'planted' makes no metric 'knobs-costs' (did you mean "
            "'knobs-cost'?); it makes knobs-quality, knobs-cost") in err
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ samplers


OBJECTIVES = [SubMetric("m-quality", "m", "quality", True)]


def asked(sampler, limit=100) -> list[tuple]:
    points = []
    while len(points) < limit and (point := sampler.ask()) is not None:
        points.append(point)
    return points


def test_sequential_enumerates_every_valid_point_in_order(knobs_doc):
    space = space_of(knobs_doc({"knobs": {"x": [1, 4], "y": ["a", "b"], "z": [0, 5]}}))
    every = itertools.product(range(2), range(2), range(2))
    assert asked(SequentialSampler(space, OBJECTIVES, 0)) == [p for p in every if p not in [(1, 0, 1), (1, 1, 1)]]


def test_random_visits_each_valid_point_once_in_a_seeded_order(knobs_doc):
    space = space_of(knobs_doc({"knobs": {"x": [1, 2, 4], "y": ["a", "b"], "z": [0, 5]}}))
    valid = sorted(p for p in space.points() if space.is_valid(p))
    first, again, other = (asked(RandomSampler(space, OBJECTIVES, seed)) for seed in (0, 0, 1))
    assert sorted(first) == valid and len(valid) == 10
    assert first == again and first != other and first != valid


def test_tpe_proposes_distinct_valid_points_until_the_space_is_used_up(knobs_doc):
    space = space_of(knobs_doc({"knobs": {"x": [1, 2, 4], "y": ["a", "b"], "z": [0, 5]}}))
    sampler = TpeSampler(space, OBJECTIVES, seed=0)
    points = []
    while (point := sampler.ask()) is not None:
        points.append(point)
        sampler.tell(point, [float(sum(point))])
    assert sorted(points) == sorted(p for p in space.points() if space.is_valid(p))


def test_tpe_is_seeded_and_steered_by_the_results(knobs_doc):
    space = space_of(knobs_doc({"knobs": {"x": list(range(1, 11)), "z": list(range(0, 10))}}, include_pass_params=False))

    def run(seed: int) -> list[tuple]:
        sampler, points = TpeSampler(space, OBJECTIVES, seed=seed), []
        for _ in range(30):
            point = sampler.ask()
            points.append(point)
            sampler.tell(point, [-abs(point[0] - 1) - abs(point[1] - 1)])  # best at x=2, z=1
        return points

    points = run(0)
    assert points == run(0) and len(set(points)) == 30
    distance = [abs(x - 1) + abs(z - 1) for x, z in points]
    assert sum(distance[20:]) < sum(distance[:10])  # later proposals lie nearer the best


# ------------------------------------------------------------------ orders and the loop


def test_pass_by_pass_searches_one_pass_at_a_time_from_the_best_before(knobs_doc, write_doc, cli, tmp_path):
    passes = {"first": {"type": "test_search:Knobs"}, "second": {"type": "test_search:Knobs"}}
    doc = knobs_doc({"first": {"x": [1, 2]}, "second": {"y": ["a", "b"]}}, passes=passes,
                    execution_order="pass-by-pass", include_pass_params=False)
    plan = stages(space_of(doc), "pass-by-pass")
    assert [([d.name for d in s.dimensions], s.step_count) for s in plan] == [(["first.x"], 1), (["second.y"], 2)]
    code, out, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    candidates = footprint(tmp_path)["search"]["candidates"]
    assert [(c["stage"], c["choice"]) for c in candidates] == [
        (0, {"first": {"x": 1}}), (0, {"first": {"x": 2}}),
        (1, {"first": {"x": 2}, "second": {"y": "a"}}), (1, {"first": {"x": 2}, "second": {"y": "b"}})]
    assert [len(c["passes"]) for c in candidates] == [1, 1, 2, 2]
    assert footprint(tmp_path)["search"]["best"] == 4


def test_failed_candidates_are_recorded_and_the_best_is_chosen_among_the_rest(knobs_doc, write_doc, cli, tmp_path):
    code, out, err = cli("run", "--config", write_doc(knobs_doc()))
    assert code == 0, err
    search = footprint(tmp_path)["search"]
    by_choice = {(c["choice"]["knobs"]["x"], c["choice"]["knobs"]["y"]): c for c in search["candidates"]}
    assert len(by_choice) == 8
    failed = [key for key, c in by_choice.items() if c["status"] == "failed"]
    assert failed == [(3, "a"), (3, "b")]
    assert by_choice[(3, "a")]["error"] == "pass 'knobs' failed: RuntimeError: x=3 is planted to fail"
    assert by_choice[(4, "b")]["metrics"] == {"knobs-quality": 45, "knobs-cost": 15.5}
    assert search["best"] == by_choice[(4, "b")]["number"]
    assert sorted(key for key, c in by_choice.items() if c["pareto"]) == [(1, "b"), (2, "b"), (4, "b")]
    assert json.loads((tmp_path / "out" / "model" / "knobs.json").read_text())["x"] == 4
    assert "  #5 knobs.x=3, knobs.y=a: failed: pass 'knobs' failed: RuntimeError: x=3 is planted to fail" in out
    assert {"report.md", "pareto.png", "footprint.json", "model_config.json", "model"} == {
        p.name for p in (tmp_path / "out").iterdir()}


def test_a_search_where_every_candidate_fails_exits_1_and_writes_nothing(knobs_doc, write_doc, cli, tmp_path):
    code, out, err = cli("run", "--config", write_doc(knobs_doc({"knobs": {"x": [3], "y": ["a", "b"]}})))
    assert code == 1 and not (tmp_path / "out").exists()
    assert err == ("olivepress: error: pass 'knobs' failed: RuntimeError: x=3 is planted to fail "
                   "(all 2 candidates failed; this was candidate 1)\n")


def test_max_samples_max_time_and_goals_stop_the_search(knobs_doc, write_doc, cli, tmp_path):
    code, _, err = cli("run", "--config", write_doc(knobs_doc(max_samples=3)))
    assert code == 0, err
    assert len(footprint(tmp_path)["search"]["candidates"]) == 3
    assert footprint(tmp_path)["search"]["stop_reason"] == "max_samples reached"

    code, _, err = cli("run", "--config", write_doc(knobs_doc(max_time=1e-6)))
    assert code == 0, err
    assert len(footprint(tmp_path)["search"]["candidates"]) == 1  # the first candidate always runs
    assert footprint(tmp_path)["search"]["stop_reason"] == "max_time reached"

    doc = knobs_doc(stop_when_goals_met=True)
    doc["evaluators"]["planted"]["metrics"][0]["sub_types"][0]["goal"] = {"type": "min-improvement", "value": 19}
    doc["engine"]["evaluate_input_model"] = False  # the goal needs the input model's value all the same
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    search = footprint(tmp_path)["search"]
    assert search["input_model_metrics"] == {"knobs-quality": 0, "knobs-cost": 0}
    assert search["sub_metrics"][0]["threshold"] == 19
    assert [c["goals_met"] for c in search["candidates"]] == [False, False, True]  # x=2, y=a makes 20
    assert search["stop_reason"] == "goals met" and search["best"] == 3


def test_a_retried_search_is_served_from_the_cache(knobs_doc, write_doc, cli, tmp_path):
    doc = write_doc(knobs_doc({"knobs": {"x": [1, 2]}}, include_pass_params=False))
    assert cli("run", "--config", doc)[0] == 0
    calls = knobs_doc.calls.read_text().splitlines()
    assert len(calls) == 3  # the input model and two candidates
    code, out, _ = cli("run", "--config", doc)
    assert code == 0 and knobs_doc.calls.read_text().splitlines() == calls
    assert "  #2 knobs.x=2: knobs-quality 20  knobs-cost 4 [pareto] [best] (cached)" in out


def test_alternative_passes_at_one_step_are_a_dimension(knobs_doc, write_doc, cli, tmp_path):
    doc = knobs_doc({"knobs": {"type": ["test_search:Knobs", "test_search:OtherKnobs"]}})
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    search = footprint(tmp_path)["search"]
    assert [c["choice"] for c in search["candidates"]] == [{"knobs": {"type": "Knobs"}}, {"knobs": {"type": "OtherKnobs"}}]
    assert search["best"] == 2 and footprint(tmp_path)["passes"][0]["type"] == "OtherKnobs"


def test_tpe_through_the_engine(knobs_doc, write_doc, cli, tmp_path):
    code, _, err = cli("run", "--config", write_doc(knobs_doc(sampler="tpe", seed=3, max_samples=5)))
    assert code == 0, err
    candidates = footprint(tmp_path)["search"]["candidates"]
    assert len(candidates) == 5 and len({json.dumps(c["choice"]) for c in candidates}) == 5


def test_candidates_run_on_a_local_process_pool(knobs_doc, write_doc, cli, tmp_path):
    code, _, err = cli("run", "--config", write_doc(knobs_doc({"knobs": {"x": [1, 2, 3, 4]}}, num_workers=2,
                                                              include_pass_params=False)))
    assert code == 0, err
    search = footprint(tmp_path)["search"]
    assert sorted(c["choice"]["knobs"]["x"] for c in search["candidates"]) == [1, 2, 3, 4]
    assert [c["status"] for c in sorted(search["candidates"], key=lambda c: c["choice"]["knobs"]["x"])] == [
        "succeeded", "succeeded", "failed", "succeeded"]
    assert search["best"] == next(c["number"] for c in search["candidates"] if c["choice"]["knobs"]["x"] == 4)


# ------------------------------------------------------------------ ModelBuilder, end to end


@pytest.fixture(scope="module")
def builder_search(tiny_llama, tmp_path_factory):
    """A search over ModelBuilder block_size x algo_config (its first 3 points) with perplexity and size
    objectives, run once."""
    from olivepress.cli import main

    root = tmp_path_factory.mktemp("builder-search")
    text = root / "text.jsonl"
    text.write_text("\n".join(json.dumps({"text": line}) for line in [
        "What's a must-see in Paris? The Eiffel Tower and the Louvre.",
        "Best way to get around Tokyo? Take the train, walk, or ride a bike."] * 8))
    doc = builder_workflow(tiny_llama, root)
    doc["data_configs"] = [{"name": "text", "load_dataset_config": {"data_name": "json", "data_files": str(text)},
                            "pre_process_data_config": {"max_seq_len": 32}}]
    doc["evaluators"] = {"quality": {"metrics": [
        {"name": "ppl", "type": "perplexity", "data_config": "text", "sub_types": [{"name": "perplexity", "priority": 1}]},
        {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 2}]}]}}
    doc["engine"].update(evaluator="quality", search_strategy={
        "search_space": {"builder": {"block_size": [32, 64], "algo_config": ["default", "rtn"]}},
        "include_pass_params": False, "max_samples": 3})
    path = root / "search.json"
    path.write_text(json.dumps(doc))
    assert main(["run", "--config", str(path)]) == 0
    return root, doc


@pytest.mark.slow
def test_a_search_over_model_builder_options_on_a_tiny_llama(builder_search):
    root, _ = builder_search
    search = footprint(root)["search"]
    candidates = search["candidates"]
    assert [c["choice"]["builder"] for c in candidates] == [
        {"block_size": 32, "algo_config": "default"}, {"block_size": 32, "algo_config": "rtn"},
        {"block_size": 64, "algo_config": "default"}]
    assert all(c["status"] == "succeeded" and c["passes"][0]["cache"] == "miss" for c in candidates)
    sizes = {c["number"]: c["metrics"]["size-bytes"] for c in candidates}
    assert sizes[3] < sizes[1]  # larger blocks: fewer scales
    assert search["input_model_metrics"]["size-bytes"] > max(sizes.values())  # int4 is smaller than fp32
    best = min(candidates, key=lambda c: (c["metrics"]["ppl-perplexity"], c["metrics"]["size-bytes"]))
    assert search["best"] == best["number"]
    model = root / "out" / "model"
    assert sum(p.stat().st_size for p in model.iterdir()) == best["metrics"]["size-bytes"]
    report = (root / "out" / "report.md").read_text()
    assert f"**Best: candidate {best['number']}**" in report and "![pareto frontier](pareto.png)" in report


@pytest.mark.slow
def test_the_search_runs_on_a_local_ray_instance(builder_search, cli):
    """Ray starts a local instance for the run and stops it; the cache serves the passes and the metrics."""
    import ray

    root, doc = builder_search
    doc["engine"]["output_dir"] = str(root / "out-ray")
    doc["engine"]["search_strategy"].update(executor="ray", num_workers=2)
    path = root / "ray.json"
    path.write_text(json.dumps(doc))
    code, out, err = cli("run", "--config", path)
    assert code == 0, err
    assert not ray.is_initialized()
    on_ray = json.loads((root / "out-ray" / "footprint.json").read_text())["search"]
    local = footprint(root)["search"]
    assert {c["number"]: c["metrics"] for c in on_ray["candidates"]} == {c["number"]: c["metrics"] for c in local["candidates"]}
    assert all(c["evaluation"] == "cached" and c["passes"][0]["cache"] == "hit" for c in on_ray["candidates"])
    assert on_ray["best"] == local["best"]


def test_every_pass_default_space_holds_values_its_field_accepts():
    declared = {}
    for pass_class in PassRegistry.builtin():
        config = pass_class.Config
        for field, values in config.search_defaults.items():
            for value in values:
                try:
                    config.__pydantic_validator__.validate_assignment(config.model_construct(), field, value)
                except ValidationError as error:  # a whole-config rule (a data config to name) is not the field's
                    assert not [e for e in error.errors() if e["loc"][:1] == (field,)], (pass_class.name, field, value)
            declared[(pass_class.name, field)] = len(values)
    assert {("ModelBuilder", "block_size"), ("ModelBuilder", "algo_config"), ("ModelBuilder", "accuracy_level"),
            ("AWQ", "group_size"), ("GPTQ", "group_size"), ("RTN", "group_size"), ("LoRA", "r")} <= set(declared)


def test_the_example_search_document_is_valid_with_nine_points():
    document = json.loads((Path(__file__).parents[1] / "workflows" / "search-builder.json").read_text())
    space = space_of(document)
    assert space.size == 9 and [d.name for d in space.dimensions] == ["builder.block_size", "builder.algo_config"]
    assert all(space.is_valid(point) for point in space.points())


# ------------------------------------------------------------------ plug points registered by name


class KnobXConfig(MetricConfig):
    metric_kind: ClassVar[MetricKind] = MetricKind(("x",), "x", True, False)
    description: ClassVar[str] = "The knob x the model was made with (planted)."


def measure_knob_x(metric, model, data, context) -> dict[str, float]:
    return {"x": json.loads((model.path / "knobs.json").read_text()).get("x", 0)}


class ReversedSampler(SequentialSampler):
    """Every valid point, last first."""

    def __init__(self, space, objectives, seed):
        super().__init__(space, objectives, seed)
        self._points = iter(list(self._points)[::-1])


SUBMITTED: list[int] = []


def counting_executor(engine, model, key, settings):
    executor = InlineExecutor(engine, model, key)
    submit = executor.submit
    executor.submit = lambda candidate: SUBMITTED.append(candidate.number) or submit(candidate)
    return executor


@pytest.fixture
def registries():
    """Registrations made by a test are dropped after it."""
    yield
    for registry in (metric_types, samplers, executors):
        registry.cache_clear()


def test_a_registered_metric_sampler_and_executor_are_used_by_name(registries, knobs_doc, write_doc, cli, tmp_path):
    register_metric("test_knob_x", KnobXConfig, measure_knob_x)
    register_sampler("test_reversed", ReversedSampler)
    register_executor("test_counting", counting_executor)
    doc = knobs_doc({"knobs": {"x": [1, 2]}}, include_pass_params=False, sampler="test_reversed",
                    executor="test_counting")
    doc["evaluators"]["planted"]["metrics"] = [{"name": "k", "type": "test_knob_x", "sub_types": [{"name": "x"}]}]
    code, _, err = cli("run", "--config", write_doc(doc))
    assert code == 0, err
    search = footprint(tmp_path)["search"]
    assert [c["choice"] for c in search["candidates"]] == [{"knobs": {"x": 2}}, {"knobs": {"x": 1}}]
    assert [c["metrics"] for c in search["candidates"]] == [{"k-x": 2}, {"k-x": 1}]
    assert SUBMITTED == [1, 2]


@pytest.mark.parametrize("strategy, problem", [
    ({"sampler": "sequentiel"}, "unknown sampler 'sequentiel' (did you mean 'sequential'?); known: random, sequential, tpe"),
    ({"executor": "rey"}, "unknown executor 'rey' (did you mean 'ray'?); known: local, ray"),
])
def test_an_unknown_sampler_or_executor_is_one_line_naming_the_known_ones(knobs_doc, write_doc, cli, strategy, problem):
    path = write_doc(knobs_doc(**strategy))
    code, _, err = cli("run", "--config", path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and problem in err, err
    assert knobs_doc.calls.read_text() == ""  # refused before the input model is evaluated
    code, _, err = cli("validate", "--config", path)  # validate finds it too, located
    field = next(iter(strategy))
    assert code == 2 and re.search(rf"{re.escape(str(path))}:\d+: engine\.search_strategy\.{field}: ", err), err


def test_an_unknown_metric_type_is_located(knobs_doc, write_doc, cli):
    doc = knobs_doc()
    doc["evaluators"]["planted"]["metrics"][0]["type"] = "perplexty"
    path = write_doc(doc)
    code, _, err = cli("validate", "--config", path)
    assert code == 2
    assert re.search(rf"{re.escape(str(path))}:\d+: evaluators\.planted\.metrics\[0\]\.type: unknown metric type "
                     r"'perplexty' \(did you mean 'perplexity'\?\); known: accuracy, custom, latency, perplexity, size_on_disk, "
                     "throughput$", err.strip()), err
