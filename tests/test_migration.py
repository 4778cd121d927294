"""Older Olive document shapes: each migrates to the expected current document (golden files), the
result validates, and keys that only an older Olive read are refused with their version and the
current spelling."""

import json
from pathlib import Path

import pytest
import yaml

from olivepress.config.errors import DocumentError
from olivepress.config.migration import migrate
from olivepress.config.source import SourceDocument
from olivepress.passes.registry import PassRegistry
from olivepress.workflow.loader import validate_document

GOLDEN = Path(__file__).parent / "golden" / "migration"
OLD_DOCUMENTS = sorted(path for path in GOLDEN.glob("*.json") if not path.name.endswith(".expected.json"))


@pytest.mark.parametrize("old", OLD_DOCUMENTS, ids=lambda path: path.stem)
def test_older_shapes_migrate_to_the_golden_current_document(old):
    expected = json.loads(old.with_name(f"{old.stem}.expected.json").read_text())
    migration = migrate(json.loads(old.read_text()))
    assert migration.document == expected["document"]
    assert [[".".join(map(str, r.path)), r.message] for r in migration.rewrites] == expected["rewrites"]
    assert migration.old_keys == []


@pytest.mark.parametrize("old", OLD_DOCUMENTS, ids=lambda path: path.stem)
def test_the_migrated_document_is_current_and_valid(old):
    current = json.loads(old.with_name(f"{old.stem}.expected.json").read_text())["document"]
    assert migrate(current).rewrites == []  # nothing left to rewrite
    workflow = validate_document(SourceDocument(data=current, file="migrated.json"), PassRegistry.default())
    assert workflow.rewrites == [] and workflow.steps


def test_the_cookbook_lora_with_double_quant_becomes_qlora_with_its_settings():
    workflow = validate_document(SourceDocument(data=json.loads((GOLDEN / "cookbook-phi3-finetune.json").read_text()),
                                                file="cookbook.json"), PassRegistry.default())
    lora = workflow.steps[0]
    assert lora.pass_class.name == "QLoRA"
    assert (lora.config.r, lora.config.alpha, lora.config.double_quant, lora.config.lora_dropout) == (64, 64, True, 0.1)
    assert lora.config.training_args["eval_strategy"] == "steps"
    assert lora.config.training_args["train_sampling_strategy"] == "group_by_length"
    accelerator = workflow.config.systems["aml"].accelerators[0]
    assert (accelerator.device, accelerator.execution_providers) == ("gpu", ["CUDAExecutionProvider"])
    data = workflow.config.data_configs[0].pre_process_data_config.params
    assert (data.max_seq_len, data.corpus_strategy, data.use_attention_mask) == (2048, "join", False)


def test_validate_lists_each_rewrite_with_its_line(cli, tmp_path, monkeypatch):
    cookbook = GOLDEN / "cookbook-phi3-finetune.json"
    code, _, err = cli("validate", "--config", cookbook)
    assert code == 2  # the files it names are not here: validate says which, where the document names them
    assert err.splitlines() == [
        f"olivepress: error: {cookbook}:3: input_model.config.hf_config.model_name: model-cache/microsoft/phi-3-mini: "
        "no such folder",
        f"olivepress: error: {cookbook}:5: systems.aml.aml_docker_config.conda_file_path: conda.yaml: no such file",
        f"olivepress: error: {cookbook}:8: data_configs[0].load_dataset_config.params.data_files: data file not "
        "found: dataset/dataset-classification.json"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model-cache" / "microsoft" / "phi-3-mini").mkdir(parents=True)
    (tmp_path / "model-cache" / "microsoft" / "phi-3-mini" / "config.json").write_text("{}")
    (tmp_path / "conda.yaml").write_text("dependencies: [olivepress]\n")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "dataset-classification.json").write_text("[]")
    code, out, _ = cli("validate", "--config", cookbook)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (f"rewrote {cookbook}:2: input_model: PyTorchModel with hf_config "
                        "became HfModel (model_name -> model_path, model_loading_args/from_pretrained_args -> load_kwargs)")
    assert f"rewrote {cookbook}:13: passes.lora.type: LoRA with double_quant trains on a " \
           "4-bit base: the pass is QLoRA" in lines
    assert lines[-1].endswith("valid, 11 rewrites; passes: lora (QLoRA), merge_adapter_weights (MergeAdapterWeights), "
                              "builder (ModelBuilder)")


def test_migrate_writes_the_current_form(cli, tmp_path):
    new = tmp_path / "current.yaml"
    code, out, _ = cli("migrate", "--config", GOLDEN / "olive-0.6-engine.json", "--output", new)
    assert code == 0 and out.splitlines()[-1] == f"wrote {new}"
    expected = json.loads((GOLDEN / "olive-0.6-engine.expected.json").read_text())["document"]
    assert yaml.safe_load(new.read_text()) == expected
    code, out, _ = cli("validate", "--config", new)
    assert code == 0 and out.strip().endswith("valid, 0 rewrites; passes: builder (ModelBuilder)")


def test_a_key_only_an_older_olive_read_is_refused_with_its_version_and_current_spelling(cli, write_doc):
    doc = write_doc({"input_model": {"type": "PyTorchModel", "config": {"hf_config": {
        "model_name": "org/m", "dataset": {"data_name": "glue"}}}}, "engine": {"cache_dir": "c", "outptu_dir": "o"}})
    code, _, err = cli("validate", "--config", doc)
    assert code == 2
    assert err.splitlines() == [
        f"olivepress: error: {doc}:7: input_model.config.hf_config.dataset: a key of Olive 0.2-0.4 that olivepress "
        "does not read; use a data config in data_configs, named by the pass or metric",
        f"olivepress: error: {doc}:15: engine.outptu_dir: unknown key 'outptu_dir' (did you mean 'output_dir'?)"]


def test_unknown_things_in_an_older_shape_are_still_errors(cli, write_doc):
    doc = write_doc({"input_model": {"type": "PyTorchModel", "config": {"hf_config": {
        "model_name": "m", "model_clas": "AutoModelForCausalLM"}}}})
    code, _, err = cli("validate", "--config", doc)
    assert code == 2 and "input_model.config.hf_config.model_clas: unknown key 'model_clas'" in err
    doc = write_doc({"input_model": {"type": "HfModel", "model_path": "m"},
                     "data_configs": [{"name": "d", "load_dataset_config": {"data_name": "json"},
                                       "pre_process_data_config": {"dataset_type": "pair"}}]})
    code, _, err = cli("validate", "--config", doc)
    assert code == 2 and "unknown key 'dataset_type'" in err


def _lora_document(lora: dict, training_args: dict, pre_process: dict) -> dict:
    return {"input_model": {"type": "HfModel", "model_path": "m"},
            "data_configs": [{"name": "train", "load_dataset_config": {"data_name": "json"},
                              "pre_process_data_config": {"params": {"text_cols": "text", **pre_process}}}],
            "passes": {"lora": {"type": "LoRA", "config": {"train_data_config": "train", **lora,
                                                           "training_args": {"max_steps": 2, **training_args}}}}}


def test_each_older_spelling_is_rewritten_with_a_recorded_line_and_keeps_its_value():
    older = _lora_document({"lora_r": 4, "lora_alpha": 8}, {"evaluation_strategy": "steps", "no_cuda": True},
                           {"source_max_len": 64})
    workflow = validate_document(SourceDocument(data=older, file="older.json"), PassRegistry.default())
    assert [(".".join(map(str, r.path)), r.message) for r in workflow.rewrites] == [
        ("data_configs.0.pre_process_data_config.params.source_max_len", "renamed max_seq_len"),
        ("passes.lora.config.lora_r", "renamed r"),
        ("passes.lora.config.lora_alpha", "renamed alpha"),
        ("passes.lora.config.training_args.evaluation_strategy", "renamed eval_strategy"),
        ("passes.lora.config.training_args.no_cuda", "renamed use_cpu"),
    ]
    config = workflow.steps[0].config
    assert (config.r, config.alpha) == (4, 8)
    assert config.training_args == {"max_steps": 2, "eval_strategy": "steps", "use_cpu": True}
    assert workflow.config.data_configs[0].pre_process_data_config.params.max_seq_len == 64


def test_current_spellings_are_read_without_a_rewrite():
    current = _lora_document({"r": 4, "alpha": 8}, {"eval_strategy": "steps", "use_cpu": True}, {"max_seq_len": 64})
    workflow = validate_document(SourceDocument(data=current, file="current.json"), PassRegistry.default())
    assert workflow.rewrites == []
    assert (workflow.steps[0].config.r, workflow.steps[0].config.training_args["eval_strategy"]) == (4, "steps")


def test_an_older_spelling_beside_its_current_one_is_refused(cli, write_doc):
    doc = write_doc(_lora_document({"lora_r": 4, "r": 8}, {"evaluation_strategy": "no", "eval_strategy": "steps"}, {}))
    code, _, err = cli("validate", "--config", doc, "--log_level", "0")
    assert code == 2
    assert "passes.lora.config.lora_r: the older name of r, which is given too; keep one" in err
    assert "passes.lora.config.training_args.evaluation_strategy: the older name of eval_strategy, which is given too; " \
           "keep one" in err


def test_a_current_olive_document_runs_as_it_is(write_doc):
    current = {
        "input_model": {"type": "HfModel", "model_path": "m", "task": "text-generation"},
        "systems": {"local": {"type": "LocalSystem",
                              "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "evaluators": {"common": {"metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [
            {"name": "bytes", "priority": 1, "goal": {"type": "max-degradation", "value": 0.1}}]}]}},
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4", "block_size": 32}},
        "engine": {"target": "local", "evaluator": "common",
                   "search_strategy": {"execution_order": "joint", "sampler": "sequential"}},
    }
    assert migrate(current).rewrites == []
    workflow = validate_document(SourceDocument(data=current, file="current.json"), PassRegistry.default())
    assert workflow.steps[0].config.block_size == 32



@pytest.mark.slow
def test_the_cookbook_document_runs_locally_once_its_systems_point_at_a_local_host(tiny_phi3, tmp_path, cli,
                                                                                   write_doc, one_thread):
    document = json.loads((GOLDEN / "cookbook-phi3-finetune.json").read_text())
    document["input_model"]["config"]["hf_config"]["model_name"] = str(tiny_phi3)
    document["systems"] = {"local": {"type": "LocalSystem", "config": {"accelerators": ["cpu"]}}}
    document["data_configs"][0]["load_dataset_config"]["params"]["data_files"] = str(
        Path(__file__).parents[1] / "olivepress" / "data" / "seed" / "dataset-classification.json")
    document["data_configs"][0]["pre_process_data_config"]["params"]["source_max_len"] = 64
    document["passes"]["lora"]["config"]["training_args"]["max_steps"] = 2
    document["engine"].update(host="local", target="local", execution_providers=["CPUExecutionProvider"],
                              log_severity_level=2, cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "out"))
    code, out, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert [line.split()[1:3] for line in out.splitlines() if line.startswith("pass ")] == [
        ["lora", "(QLoRA):"], ["merge_adapter_weights", "(MergeAdapterWeights):"], ["builder", "(ModelBuilder):"]]
    assert "passes.lora.type: LoRA with double_quant trains on a 4-bit base: the pass is QLoRA" in err
    assert (tmp_path / "out" / "model" / "model.onnx").is_file()


def _validated(document: dict):
    return validate_document(SourceDocument(data=document, file="w.json"), PassRegistry.default())


def test_olive_06_data_configs_params_config_and_components_go_to_the_components_that_read_them():
    workflow = _validated({
        "input_model": {"type": "HfModel", "model_path": "org/m"},
        "data_configs": [{"name": "d", "type": "HuggingfaceContainer",
                          "components": {"dataloader": {"params": {"shuffle": True}}},
                          "params_config": {"data_name": "org/data", "split": "train[:8]", "batch_size": 2,
                                            "max_samples": 4,
                                            "component_kwargs": {"pre_process_data": {"source_max_len": 64}}}}]})
    data = workflow.config.data_configs[0]
    assert (data.load_dataset_config.params.data_name, data.load_dataset_config.params.split) == ("org/data", "train[:8]")
    assert (data.dataloader_config.params.batch_size, data.dataloader_config.params.shuffle) == (2, True)
    assert (data.pre_process_data_config.params.max_samples, data.pre_process_data_config.params.max_seq_len) == (4, 64)
    assert [(".".join(map(str, r.path)), r.message) for r in workflow.rewrites] == [
        ("data_configs.0.components", "became dataloader_config"),
        ("data_configs.0.params_config", "its parameters went to the components that read them"),
        ("data_configs.0.params_config.component_kwargs.pre_process_data.source_max_len", "renamed max_seq_len"),
    ]


def test_a_params_config_key_no_component_reads_is_named_where_it_was_written(write_doc, cli):
    doc = write_doc({"input_model": {"type": "HfModel", "model_path": "org/m"},
                     "data_configs": [{"name": "d", "params_config": {"data_name": "org/data", "max_sampels": 4}}]})
    code, _, err = cli("validate", "--config", doc)
    assert code == 2
    assert err == (f"olivepress: error: {doc}:11: data_configs[0].params_config.max_sampels: unknown key 'max_sampels' "
                   "(did you mean 'max_samples'?)\n")


def test_output_name_auto_optimizer_and_top_level_metrics_are_migrated():
    workflow = _validated({
        "input_model": {"type": "HfModel", "model_path": "org/m"},
        "metrics": [{"name": "size", "type": "size_on_disk"}],
        "passes": {},
        "auto_optimizer_config": {"disable_auto_optimizer": True},
        "engine": {"output_dir": "models", "output_name": "phi3"},
    })
    assert workflow.config.engine.output_dir == "models/phi3"
    assert workflow.config.engine.evaluator == "common_evaluator"
    assert workflow.config.evaluators["common_evaluator"].metrics[0].name == "size"
    assert [r.message for r in workflow.rewrites] == [
        "disable_auto_optimizer: true is what olivepress does without passes (the input model is evaluated); removed",
        "became evaluators.common_evaluator, the engine's evaluator",
        "the output's name became its folder: engine.output_dir models/phi3",
    ]
    with pytest.raises(DocumentError) as error:
        _validated({"input_model": {"type": "HfModel", "model_path": "org/m"}, "auto_optimizer_config": {}})
    assert str(error.value) == ("w.json: auto_optimizer_config: Olive 0.6-0.9's auto optimizer chooses passes for an "
                                "empty `passes`; olivepress does that in `olivepress auto-opt`; or list the passes")


def test_current_olive_spellings_are_read_as_they_are():
    workflow = _validated({
        "input_model": {"type": "HFModel", "model_path": "org/m"},
        "target": {"type": "localsystem", "accelerators": [{"device": "CPU", "execution_providers": ["CPUExecutionProvider"]}]},
        "passes": {"builder": {"type": "ModelBuilder", "disable_search": True, "config": {"precision": "int4"}}},
        "no_artifacts": True, "clean_evaluation_cache": True, "ort_log_severity_level": 1, "log_to_file": False,
        "plot_pareto_frontier": True, "evaluate_input_model": False,
    })
    engine = workflow.config.engine
    assert (engine.no_artifacts, engine.clean_evaluation_cache, engine.ort_log_severity_level) == (True, True, 1)
    assert workflow.config.input_model.type == "HfModel"
    assert workflow.config.target_system()[1].accelerators[0].device == "cpu"
    assert [r.message for r in workflow.rewrites] == ["the inline system moved to systems.target_system",
                                                      "true is the default without a search; removed"]
    assert [".".join(map(str, r.path)) for r in workflow.rewrites] == ["target", "passes.builder.disable_search"]


def test_olive_keys_olivepress_does_not_read_are_refused_saying_what_to_do_instead():
    with pytest.raises(DocumentError) as error:
        _validated({"input_model": {"type": "HfModel", "model_path": "org/m"},
                    "systems": {"env": {"type": "PythonEnvironment", "python_environment_path": "/usr"}},
                    "passes": {"b": {"type": "ModelBuilder", "host": "env", "clean_run_cache": True}}})
    assert error.value.problems == [
        "w.json: passes.b.host: a pass's own system (Olive 0.2 and later) is not read: passes run on engine.target; "
        "use one target",
    ]


def test_olive_06_ort_perf_tuning_is_the_session_params_tuning_pass_with_its_parameters():
    older = {"input_model": {"type": "ONNXModel", "model_path": "org/m"},
             "passes": {"tune": {"type": "OrtPerfTuning",
                                 "config": {"providers_list": ["CPUExecutionProvider"], "opt_level_list": [0, 99],
                                            "io_bind": True, "data_config": "dummy"}}},
             "data_configs": [{"name": "dummy", "type": "TransformersTokenDummyDataContainer"}]}
    migration = migrate(older)
    assert migration.document["passes"]["tune"]["type"] == "OrtSessionParamsTuning"
    assert [(".".join(map(str, r.path)), r.message) for r in migration.rewrites
            if r.path[-1] == "type"] == [("passes.tune.type", "OrtPerfTuning is now OrtSessionParamsTuning")]
    workflow = validate_document(SourceDocument(data=older, file="older.json"), PassRegistry.default())
    assert workflow.steps[0].pass_class.name == "OrtSessionParamsTuning"
    assert (workflow.steps[0].config.opt_level_list, workflow.steps[0].config.io_bind) == ([0, 99], True)


def test_gptqmodel_is_gptq_with_its_own_defaults_and_settings_it_cannot_honour_named():
    def gptqmodel(**settings):
        return {"input_model": {"type": "HfModel", "model_path": "org/m"},
                "data_configs": [{"name": "calib", "type": "HuggingfaceContainer",
                                  "load_dataset_config": {"data_name": "org/data"}}],
                "passes": {"q": {"type": "GptqModel", "data_config": "calib", **settings}}}

    # as Olive's QNN documents write it, with a group size MatMulNBits can hold
    workflow = _validated(gptqmodel(bits=4, group_size=64, lm_head=False, device="cuda", true_sequential=True))
    step = workflow.steps[0]
    assert step.pass_class.name == "GPTQ"
    assert (step.config.group_size, step.config.sym, step.config.damp_percent) == (64, True, 0.05)
    rewrites = {".".join(map(str, r.path)): r.message for r in migrate(gptqmodel(device="cuda")).rewrites}
    assert rewrites["passes.q.device"] == "not read: the run's accelerator decides where GPTQ runs; removed"

    with pytest.raises(DocumentError) as refused:
        _validated(gptqmodel(group_size=-1, rotation="hadamard", dynamic={"+:.*down_proj": {"bits": 8}}))
    lines = refused.value.problems
    assert any("passes.q.group_size: -1 (per-channel, GptqModel's default) is not written" in line for line in lines)
    assert any("passes.q.rotation: rotations are a pass of their own: put a QuaRot pass" in line for line in lines)
    assert any("passes.q.dynamic: GPTQModel's per-module regex settings are not read" in line for line in lines)
    with pytest.raises(DocumentError, match="GptqModel quantizes per channel by default"):
        _validated(gptqmodel())
