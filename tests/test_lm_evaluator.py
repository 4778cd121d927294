"""Olive's LMEvaluator: lm-evaluation-harness tasks from a local folder, on a tiny Hugging Face model and on its
ModelBuilder export, with the accuracies checked against the model's own log-probabilities."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "olive-examples" / "v0.9.2" / "examples" / "llama2"
QUESTIONS = ["Best way to get around Tokyo?", "What's a must-see in Paris?", "I'm thrilled to start my new job!",
             "This haunted house is terrifying!", "The train leaves at noon.", "Missing the concert is sad.",
             "The museum opens later today.", "Take the train or walk?"]
CHOICES = ["joy", "fear", "the train", "the Louvre"]
TASK_YAML = """task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
GENERATE_YAML = """task: tiny_generate
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: {max_gen_tokens}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
ROLLING_YAML = """task: tiny_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{question}}}}"
"""
GROUP_YAML = """group: tiny_group
task:
  - tiny_choice
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
"""
MAX_GEN_TOKENS = 4

pytest.importorskip("lm_eval")


def choice_log_probs(model_path: Path, adapter: Path | None = None) -> np.ndarray:
    """[question, choice] sum of the log-probabilities of ' choice' after the question, as lm_eval splits the
    tokens (the whole text encoded, the question's tokens cut off), from the torch model (with its adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    network = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    if adapter is not None:
        network = PeftModel.from_pretrained(network, adapter).eval()
    table = np.zeros((len(QUESTIONS), len(CHOICES)))
    for row, question in enumerate(QUESTIONS):
        context = tokenizer.encode(question)
        for column, choice in enumerate(CHOICES):
            whole = tokenizer.encode(f"{question} {choice}")
            with torch.no_grad():
                log_probs = torch.log_softmax(network(torch.tensor([whole[:-1]])).logits[0].float(), dim=-1)
            table[row, column] = sum(float(log_probs[position - 1, whole[position]])
                                     for position in range(len(context), len(whole)))
    return table


def greedy_answers(model_path: Path) -> list[str]:
    """Each question's greedy continuation by the torch model (MAX_GEN_TOKENS tokens, cut at a new line)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    network = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    answers = []
    for question in QUESTIONS:
        ids = torch.tensor([tokenizer.encode(question)])
        with torch.no_grad():
            output = network.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_GEN_TOKENS,
                                      do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True).split("\n")[0])
    return answers


def write_task(folder: Path, log_probs: np.ndarray, answers: list[str] | None = None) -> tuple[float, float]:
    """The tasks and their data: the model's favourite choice (and its own greedy answer) is the answer of the
    first five questions, its least favourite choice (and another text) of the last three. Returns the expected
    acc and acc_norm."""
    best, worst = log_probs.argmax(axis=1), log_probs.argmin(axis=1)
    golds = [int(best[row]) if row < 5 else int(worst[row]) for row in range(len(QUESTIONS))]
    answers = answers or [""] * len(QUESTIONS)
    targets = [answer if row < 5 else answer + " not this" for row, answer in enumerate(answers)]
    data = folder / "tiny_choice.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps({"question": question, "choices": CHOICES, "gold": gold, "answer": target})
                            + "\n" for question, gold, target in zip(QUESTIONS, golds, targets, strict=True)),
                    encoding="utf-8")
    for name, text in (("tiny_choice", TASK_YAML), ("tiny_generate", GENERATE_YAML), ("tiny_rolling", ROLLING_YAML),
                       ("tiny_group", GROUP_YAML)):
        (folder / f"{name}.yaml").write_text(text.format(data=data, max_gen_tokens=MAX_GEN_TOKENS), encoding="utf-8")
    lengths = np.array([len(choice) for choice in CHOICES], dtype=float)
    normalized = (log_probs / lengths).argmax(axis=1)
    return 5 / 8, float(np.mean([normalized[row] == golds[row] for row in range(len(QUESTIONS))]))


def lm_document(model: Path, tmp_path: Path, tasks: list[str], passes: dict | None = None) -> dict:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model)},
        "passes": passes or {},
        "evaluators": {"evaluator": {"type": "LMEvaluator", "tasks": tasks, "batch_size": 1,
                                     "include_path": str(tmp_path / "tasks")}},
        "engine": {"evaluator": "evaluator", "evaluate_input_model": True, "cache_dir": str(tmp_path / "cache"),
                   "output_dir": str(tmp_path / "out")},
    }


def footprint_of(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "footprint.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_tasks_from_a_local_folder_score_the_hf_model_and_its_onnx_export(tiny_llama, tmp_path, write_doc, cli,
                                                                          one_thread):
    log_probs = choice_log_probs(tiny_llama)
    acc, acc_norm = write_task(tmp_path / "tasks", log_probs, greedy_answers(tiny_llama))
    passes = {"mb": {"type": "ModelBuilder", "precision": "fp32"}}
    document = lm_document(tiny_llama, tmp_path, ["tiny_choice", "tiny_generate", "tiny_rolling"], passes)
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    footprint = footprint_of(tmp_path)
    names = ["tiny_choice-acc", "tiny_choice-acc_norm", "tiny_generate-exact_match", "tiny_rolling-word_perplexity",
             "tiny_rolling-byte_perplexity", "tiny_rolling-bits_per_byte"]
    assert [sub["name"] for sub in footprint["search"]["sub_metrics"]] == names
    assert [sub["higher_is_better"] for sub in footprint["search"]["sub_metrics"]] == [True] * 3 + [False] * 3
    hf, onnx = footprint["search"]["input_model_metrics"], footprint["output_model"]["metrics"]
    expected = {"tiny_choice-acc": acc, "tiny_choice-acc_norm": acc_norm, "tiny_generate-exact_match": 5 / 8}
    assert {name: hf[name] for name in expected} == pytest.approx(expected)
    # the fp32 export's log-probabilities are the torch model's, to rounding: the same answers, the same perplexity
    assert {name: onnx[name] for name in expected} == pytest.approx(expected)
    assert onnx == pytest.approx(hf, rel=1e-4)

    # measured once per model: a second run reads both evaluations from the cache
    evaluations = sorted((tmp_path / "cache" / "evaluations").iterdir())
    assert len(evaluations) == 2
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert sorted((tmp_path / "cache" / "evaluations").iterdir()) == evaluations


@pytest.mark.slow
def test_a_search_ranks_candidates_by_a_task_metric(tiny_llama, tmp_path, write_doc, cli, one_thread):
    write_task(tmp_path / "tasks", choice_log_probs(tiny_llama))
    document = lm_document(tiny_llama, tmp_path, ["tiny_choice"], {"mb": {"type": "ModelBuilder", "precision": "fp32"}})
    document["engine"]["search_strategy"] = {"search_space": {"mb": {"precision": ["fp32", "int4"]}},
                                             "include_pass_params": False, "objectives": ["tiny_choice-acc_norm"]}
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    search = footprint_of(tmp_path)["search"]
    scores = {candidate["number"]: candidate["metrics"]["tiny_choice-acc_norm"] for candidate in search["candidates"]}
    assert len(scores) == 2
    assert scores[search["best"]] == max(scores.values())


def test_an_objective_the_tasks_do_not_report_is_named(tiny_llama, tmp_path, write_doc, cli):
    write_task(tmp_path / "tasks", np.zeros((len(QUESTIONS), len(CHOICES))))
    document = lm_document(tiny_llama, tmp_path, ["tiny_choice"], {"mb": {"type": "ModelBuilder", "precision": "fp32"}})
    document["engine"]["search_strategy"] = {"objectives": ["tiny_choice-accuracy"]}
    code, _, err = cli("validate", "--config", write_doc(document))
    assert code == 2
    assert err.strip().endswith("engine.search_strategy.objectives[0]: evaluator 'evaluator' makes no metric "
                                "'tiny_choice-accuracy' (did you mean 'tiny_choice-acc'?); it makes tiny_choice-acc, "
                                "tiny_choice-acc_norm")


@pytest.mark.slow
def test_a_group_reports_its_tasks_and_its_aggregate_and_size_on_disk_the_bytes(tiny_llama, tmp_path, write_doc,
                                                                                 cli, one_thread):
    acc, acc_norm = write_task(tmp_path / "tasks", choice_log_probs(tiny_llama))
    code, _, err = cli("run", "--config", write_doc(lm_document(tiny_llama, tmp_path, ["tiny_group", "size_on_disk"])))
    assert code == 0, err
    metrics = footprint_of(tmp_path)["output_model"]["metrics"]
    size = sum(path.stat().st_size for path in tiny_llama.rglob("*") if path.is_file())
    assert list(metrics) == ["size_on_disk-bytes", "tiny_choice-acc", "tiny_choice-acc_norm", "tiny_group-acc"]
    assert metrics == pytest.approx({"size_on_disk-bytes": size, "tiny_choice-acc": acc, "tiny_choice-acc_norm": acc_norm,
                                     "tiny_group-acc": acc})


@pytest.mark.slow
def test_a_model_with_an_adapter_is_scored_with_the_adapter_applied(tiny_llama, tmp_path, write_doc, cli, one_thread):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    network = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                             LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    network.save_pretrained(tmp_path / "adapter")
    with_adapter = choice_log_probs(tiny_llama, tmp_path / "adapter")
    assert not np.allclose(with_adapter, choice_log_probs(tiny_llama))  # the adapter changes the answers' scores
    acc, acc_norm = write_task(tmp_path / "tasks", with_adapter)
    document = lm_document(tiny_llama, tmp_path, ["tiny_choice"])
    document["input_model"]["adapter_path"] = str(tmp_path / "adapter")
    code, _, err = cli("run", "--config", write_doc(document))
    assert code == 0, err
    assert footprint_of(tmp_path)["output_model"]["metrics"] == pytest.approx(
        {"tiny_choice-acc": acc, "tiny_choice-acc_norm": acc_norm})


def test_the_evaluation_key_holds_the_task_definitions_content(tmp_path):
    from olivepress.config.sections import LMEvaluatorConfig
    from olivepress.evaluation.lm_evaluator import key_material

    write_task(tmp_path / "tasks", np.zeros((len(QUESTIONS), len(CHOICES))))
    config = LMEvaluatorConfig(type="LMEvaluator", tasks=["tiny_choice"], include_path=str(tmp_path / "tasks"))
    before = key_material(config)
    data = tmp_path / "tasks" / "tiny_choice.jsonl"
    data.write_text(data.read_text().replace('"gold": 0', '"gold": 1'), encoding="utf-8")
    assert key_material(config) != before


@pytest.mark.slow
def test_int4_export_scores_by_its_own_log_probabilities(tiny_llama, tmp_path, write_doc, cli, one_thread):
    import onnxruntime_genai as og

    passes = {"mb": {"type": "ModelBuilder", "precision": "int4"}}
    write_task(tmp_path / "tasks", choice_log_probs(tiny_llama))
    code, _, err = cli("run", "--config", write_doc(lm_document(tiny_llama, tmp_path, ["tiny_choice"], passes)))
    assert code == 0, err
    # the expected answers from ONNX Runtime GenAI's logits of the int4 model (not olivepress's decoder)
    model = og.Model(str(tmp_path / "out" / "model"))
    tokenizer = og.Tokenizer(model)
    golds = [json.loads(line)["gold"] for line in (tmp_path / "tasks" / "tiny_choice.jsonl").read_text().splitlines()]
    correct = 0
    for question, gold in zip(QUESTIONS, golds, strict=True):
        scores = []
        for choice in CHOICES:
            context, whole = tokenizer.encode(question).tolist(), tokenizer.encode(f"{question} {choice}").tolist()
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=64)
            generator = og.Generator(model, params)
            generator.append_tokens([whole[:-1]])
            logits = generator.get_output("logits")[0].astype(np.float64)
            shifted = logits - logits.max(axis=-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            scores.append(sum(log_probs[position - 1, whole[position]] for position in range(len(context), len(whole))))
        correct += int(np.argmax(scores) == gold)
    assert footprint_of(tmp_path)["output_model"]["metrics"]["tiny_choice-acc"] == pytest.approx(correct / 8)


def test_generation_on_a_plain_onnx_model_is_refused_in_one_line(tiny_llama, tmp_path, monkeypatch):
    from olivepress.config.sections import LMEvaluatorConfig
    from olivepress.errors import OlivepressError
    from olivepress.evaluation.lm_evaluator import measure_tasks
    from olivepress.hardware import Accelerator
    from olivepress.models.handles import OnnxModel

    write_task(tmp_path / "tasks", np.zeros((len(QUESTIONS), len(CHOICES))))
    config = LMEvaluatorConfig(type="LMEvaluator", tasks=["tiny_choice", "tiny_generate"],
                               include_path=str(tmp_path / "tasks"))
    with pytest.raises(OlivepressError) as raised:
        measure_tasks(config, OnnxModel(tmp_path / "exported"), Accelerator("cpu", "CPUExecutionProvider"))
    assert str(raised.value) == ("tasks: task 'tiny_generate' generates text (generate_until), which an ONNX model "
                                 "does with ONNX Runtime GenAI only; this one has no genai_config.json (export it "
                                 "with ModelBuilder)")


def test_a_model_class_that_does_not_fit_the_model_is_named(tmp_path):
    from olivepress.config.sections import LMEvaluatorConfig
    from olivepress.errors import OlivepressError
    from olivepress.evaluation.lm_evaluator import measure_tasks
    from olivepress.hardware import Accelerator
    from olivepress.models.handles import OnnxModel

    write_task(tmp_path / "tasks", np.zeros((len(QUESTIONS), len(CHOICES))))
    config = LMEvaluatorConfig(type="LMEvaluator", tasks=["tiny_choice"], model_class="hf",
                               include_path=str(tmp_path / "tasks"))
    with pytest.raises(OlivepressError) as raised:
        measure_tasks(config, OnnxModel(tmp_path / "exported"), Accelerator("cpu", "CPUExecutionProvider"))
    assert str(raised.value) == "model_class: 'hf' does not fit the model, which is a plain ONNX model (model_class ort)"


def test_an_unknown_task_is_named_in_one_line(tiny_llama, tmp_path, write_doc, cli):
    write_task(tmp_path / "tasks", np.zeros((len(QUESTIONS), len(CHOICES))))
    code, _, err = cli("run", "--config", write_doc(lm_document(tiny_llama, tmp_path, ["tiny_choise"])))
    assert code != 0
    assert err.strip().splitlines()[-1].endswith(
        "tasks: unknown task 'tiny_choise' (did you mean 'tiny_choice'?); lm_eval has no task, group or tag of that name")


def test_without_lm_eval_the_document_validates_and_the_run_names_the_extra(tiny_llama, tmp_path, write_doc, cli,
                                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if not installed: importing it fails
    document = write_doc(lm_document(tiny_llama, tmp_path, ["hellaswag"]))
    code, out, err = cli("validate", "--config", document)
    assert code == 0, err
    code, _, err = cli("run", "--config", document)
    assert code != 0
    assert err.strip().splitlines()[-1].endswith(
        "evaluator type LMEvaluator runs lm-evaluation-harness, which is not installed: pip install olivepress[lmeval]")


@pytest.mark.parametrize("name", ["llama2_lmeval.json", "llama2_lmeval_onnx.json"])
def test_olives_lm_evaluator_documents_validate(name, cli, monkeypatch):
    monkeypatch.chdir(EXAMPLES)
    code, out, err = cli("validate", "--config", name)
    assert code == 0, err
    assert out.startswith(f"{name}: valid")


def test_evaluator_keys_are_checked_in_one_line_each(tmp_path, write_doc, cli):
    document = lm_document(tmp_path / "model", tmp_path, ["hellaswag"])
    document["evaluators"]["evaluator"].update({"batch_size": 0, "limits": 4})
    code, _, err = cli("validate", "--config", write_doc(document))
    assert code == 2
    lines = [line for line in err.splitlines() if "evaluators.evaluator" in line]
    assert [line.split("evaluators.evaluator.")[1] for line in lines] == [
        "batch_size: Input should be greater than 0 (got 0)", "limits: unknown key 'limits' (did you mean 'limit'?)"]
