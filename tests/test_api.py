"""The Python API: documents as dicts or files, in-process passes, errors as the CLI reports them, the task
functions and streamed generation."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import builder_workflow
from test_cache import make_model, note_workflow

import olivepress
from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext


class ShoutConfig(PassConfig):
    word: str = "HEY"


@olivepress.register_pass
class ApiTestShout(Pass[HfModel, ShoutConfig]):
    name = "ApiTestShout"
    description = "Copy a Hugging Face model folder and write SHOUT.txt into it."
    version = "1"
    accepts = ("hf",)
    produces = "hf"
    Config = ShoutConfig

    def run(self, model: HfModel, config: ShoutConfig, context: PassContext) -> HfModel:
        shutil.copytree(model.path, context.output_dir, dirs_exist_ok=True)
        (context.output_dir / "SHOUT.txt").write_text(config.word)
        context.metrics["letters"] = len(config.word)
        return HfModel(path=context.output_dir)


def shout_workflow(tmp_path: Path, model: Path, word: str = "HEY") -> dict:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model)},
        "passes": {"shout": {"type": "ApiTestShout", "word": word}},
        "engine": {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")},
    }


def test_import_is_light_and_lazy():
    code = ("import sys, olivepress; assert 'olivepress.api' not in sys.modules; olivepress.run; "
            "assert 'torch' not in sys.modules and 'onnxruntime_genai' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        olivepress.nothing  # noqa: B018


def test_a_dict_document_runs_as_the_same_document_from_a_file(tmp_path, write_doc):
    model = make_model(tmp_path / "m")
    document = note_workflow(tmp_path, model)
    from_dict = olivepress.run(document)
    assert document == note_workflow(tmp_path, model)  # the caller's dict is left as it was
    from_file = olivepress.run(write_doc(document), output_path=tmp_path / "out2")
    assert [step.output_key for step in from_file.steps] == [step.output_key for step in from_dict.steps]
    assert [step.from_cache for step in from_dict.steps + from_file.steps] == [False, True]
    assert from_file.output_dir == tmp_path / "out2"
    assert (from_file.model.path / "NOTE.txt").read_text() == "hello"
    assert from_dict.metrics == {} and from_dict.candidates == []


def test_a_pass_registered_in_process_runs_by_name_and_is_in_the_schema(tmp_path):
    result = olivepress.run(shout_workflow(tmp_path, make_model(tmp_path / "m"), "LOUD"))
    assert (result.model.path / "SHOUT.txt").read_text() == "LOUD"
    assert [(step.name, step.type, step.metrics) for step in result.steps] == [("shout", "ApiTestShout", {"letters": 4})]
    assert "ApiTestShoutPass" in json.dumps(olivepress.schema())
    assert "ApiTestShoutPass" not in json.dumps(olivepress.schema(builtin_only=True))


def test_registering_a_pass_again_replaces_it_but_a_builtin_name_is_refused():
    again = type("ApiTestShout", (ApiTestShout,), {})
    assert olivepress.register_pass(again) is again
    olivepress.register_pass(ApiTestShout)
    taken = type("LoRAClash", (ApiTestShout,), {"name": "LoRA"})
    with pytest.raises(olivepress.OlivepressError, match="pass type name 'LoRA' is taken"):
        olivepress.register_pass(taken)
    with pytest.raises(olivepress.OlivepressError, match="is not a pass type"):
        olivepress.register_pass(dict)  # type: ignore[type-var]


def test_a_registry_sent_to_another_process_leaves_in_process_passes_out():
    from olivepress.passes.registry import PassRegistry

    registry = PassRegistry.default()
    assert "ApiTestShout" in {cls.name for cls in registry}
    sent = pickle.loads(pickle.dumps(registry))
    assert {cls.name for cls in sent} == {cls.name for cls in registry} - {"ApiTestShout"}
    assert sent.get("LoRA") is registry.get("LoRA")


def test_bad_input_raises_the_line_the_cli_prints(tmp_path, write_doc, cli):
    document = shout_workflow(tmp_path, make_model(tmp_path / "m"))
    document["passes"]["shout"]["type"] = "ApiTestShuot"
    file = write_doc(document)
    code, _, err = cli("run", "--config", file)
    assert code == 2
    with pytest.raises(olivepress.OlivepressError) as from_file:
        olivepress.run(file)
    assert err.strip() == f"olivepress: error: {from_file.value}"
    with pytest.raises(olivepress.OlivepressError) as from_dict:
        olivepress.run(document)
    where, _, message = str(from_file.value).partition(": ")
    assert where.startswith(str(file)) and str(from_dict.value) == f"<dict>: {message}"
    assert "did you mean 'ApiTestShout'" in message


def test_every_problem_is_reported(tmp_path):
    document = shout_workflow(tmp_path, make_model(tmp_path / "m"))
    document["passes"]["other"] = {"type": "NoSuchPass"}
    document["passes"]["shout"]["word"] = ["not", "text"]
    with pytest.raises(olivepress.OlivepressError) as error:
        olivepress.run(document)
    problems = error.value.problems  # type: ignore[attr-defined]
    assert [problem.split(":")[1].strip() for problem in problems] == ["passes.shout.word", "passes.other.type"]
    assert str(error.value) == f"{problems[0]} (and 1 more problem)"


def test_a_failing_pass_raises_pass_failed_error_as_the_cli_reports_it(tmp_path, write_doc, cli):
    document = note_workflow(tmp_path, make_model(tmp_path / "m"), "fail")
    with pytest.raises(olivepress.PassFailedError) as error:
        olivepress.run(document)
    assert error.value.pass_name == "note"
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 1 and err.strip() == f"olivepress: error: {error.value}"


def test_a_dry_run_plans_without_running(tmp_path):
    document = note_workflow(tmp_path, make_model(tmp_path / "m"))
    plan = olivepress.run(document, dry_run=True)
    assert isinstance(plan, olivepress.Plan) and plan.source == "<dict>"
    assert [(step.name, step.cached) for step in plan.steps] == [("note", False)]
    result = olivepress.run(document)
    assert plan.steps[0].key == result.steps[0].output_key
    assert olivepress.run(document, dry_run=True).steps[0].cached is True


def test_task_functions_take_olive_names_and_refuse_both(tiny_llama, tmp_path):
    saved = tmp_path / "quantize.json"
    plan = olivepress.quantize(model_name_or_path=tiny_llama, algorithm="rtn", output_path=tmp_path / "out",
                               save_config=saved, dry_run=True)
    assert isinstance(plan, olivepress.Plan) and [step.type for step in plan.steps] == ["RTN"]
    assert json.loads(saved.read_text())["passes"] == {"rtn": {"type": "RTN", "bits": 4, "lm_head": True, "embeds": "tied"}}
    with pytest.raises(olivepress.OlivepressError, match="give the model once"):
        olivepress.quantize(tiny_llama, model_name_or_path=tiny_llama, output_path=tmp_path / "out")
    with pytest.raises(olivepress.OlivepressError, match="no training data"):
        olivepress.finetune(tiny_llama, output_path=tmp_path / "ft")


def test_finetune_keywords_build_the_same_document_as_the_flags(tiny_llama, tmp_path, cli):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "Hi?", "response": "Hello."}\n')
    from_api, from_cli = tmp_path / "api.json", tmp_path / "cli.json"
    olivepress.finetune(model_name_or_path=tiny_llama, output_path=tmp_path / "out", data_files=[str(data)],
                        text_template="Q: {prompt}\nA: {response}", lora_r=4, target_modules=["q_proj", "v_proj"],
                        max_steps=2, warmup_steps=1, save_config=from_api, dry_run=True)
    code, _, err = cli("finetune", "-m", tiny_llama, "-o", tmp_path / "out", "--data_files", data, "--text_template",
                       "Q: {prompt}\\nA: {response}", "--lora_r", "4", "--target_modules", "q_proj,v_proj",
                       "--max_steps", "2", "--warmup_steps", "1", "--save_config", from_cli, "--dry_run")
    assert code == 0, err
    assert json.loads(from_api.read_text()) == json.loads(from_cli.read_text())


@pytest.mark.slow
def test_quantize_rtn(tiny_llama, tmp_path):
    result = olivepress.quantize(tiny_llama, algorithm="rtn", group_size=32, output_path=tmp_path / "out",
                                 cache_dir=tmp_path / "cache")
    assert isinstance(result, olivepress.RunResult)
    assert [step.type for step in result.steps] == ["RTN"] and (result.model.path / "config.json").is_file()


@pytest.mark.slow
def test_finetune_auto_opt_convert_adapters_and_generate(tiny_llama, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"Sentence number {i} about Paris."}) + "\n" for i in range(16)))
    cache = tmp_path / "cache"
    tuned = olivepress.finetune(tiny_llama, output_path=tmp_path / "ft", data_files=str(data), max_seq_len=16,
                                lora_r=4, target_modules="q_proj,v_proj", max_steps=2, batch_size=4, cache_dir=cache)
    assert isinstance(tuned, olivepress.RunResult) and tuned.model.adapter_path is not None
    chains = []
    exported = olivepress.auto_opt(tuned.model.path, adapter_path=tuned.model.adapter_path, precision="fp32",
                                   use_ort_genai=True, output_path=tmp_path / "onnx", cache_dir=cache, on_chain=chains.append)
    assert isinstance(exported, olivepress.RunResult)
    assert chains[0].describe().startswith("ModelBuilder") and [step.from_cache for step in exported.steps] == [False, False]
    adapter_file = olivepress.convert_adapters(tuned.model.adapter_path, output_path=tmp_path / "tuned.onnx_adapter",
                                               model=exported.model.path)
    assert adapter_file.ranks == [4] and adapter_file.path.is_file()
    pieces = list(olivepress.generate(exported.model.path, "Paris", adapters={"tuned": adapter_file.path}, use="tuned",
                                      max_length=40))
    assert len(pieces) > 1
    assert "".join(pieces) == olivepress.generate_text(model_name_or_path=exported.model.path, prompt="Paris",
                                                       adapters={"tuned": adapter_file.path}, use="tuned", max_length=40)


@pytest.mark.slow
def test_generate_streams_from_a_model_builder_output(tiny_llama, tmp_path):
    result = olivepress.run(builder_workflow(tiny_llama, tmp_path, precision="fp32"))
    pieces = list(olivepress.generate(result.model.path, "What's a must-see in Paris?", max_length=48))
    assert len(pieces) > 1
    assert "".join(pieces) == olivepress.generate_text(result.model.path, "What's a must-see in Paris?", max_length=48)
    with pytest.raises(olivepress.OlivepressError, match="--use travel: no adapter of that name"):
        olivepress.generate_text(result.model.path, "hi", use="travel")


@pytest.mark.slow
def test_the_lab_notebook_runs_its_cells(tiny_llama, tmp_path):
    notebook = Path(__file__).resolve().parents[1] / "workflows" / "olive-lab" / "lab_notebook.py"
    env = {**os.environ, "MODEL": str(tiny_llama), "MAX_STEPS": "2", "AWQ_SAMPLES": "4"}
    result = subprocess.run([sys.executable, str(notebook)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "auto-opt: ModelBuilder(precision=int4, execution_provider=cpu) -> ExtractAdapters" in result.stdout
    assert "[Travel]: What's a must-see in Paris?" in result.stdout
    assert (tmp_path / "models" / "onnx-ao" / "model" / "adapter_weights.onnx_adapter").is_file()
