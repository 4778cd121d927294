"""Rewriting older Olive document shapes into the current one, a recorded rewrite each.

Each rule recognizes one older shape (the ones in the Phi-3 cookbook and Olive's examples from 0.2
to 0.9) and rewrites it in place. Anything no rule knows is left for validation to refuse, and a key
that only an older Olive read is refused here, naming its version and the current spelling, as is an
older name given beside its current one. Nothing is dropped silently: every rewrite, removals
included, is reported. Spellings that current Olive still writes are not rewritten: they are aliases
of the pass's fields, read as they are, or (engine keys at the top level, type names in any case) put
into the one form without a line. Every move is recorded, so that a problem found later is reported at
the key as the user wrote it. A rule reads any value without an exception: a shape it does not expect
is left as it is for validation to report.
"""

import copy
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from olivepress.config.data_params import DataloaderParams, LoadDatasetParams, PreProcessParams
from olivepress.config.sections import EngineConfig, InputModelConfig, MetricConfig, SystemConfig
from olivepress.config.source import DocPath
from olivepress.hardware import device_of


@dataclass(frozen=True)
class Rewrite:
    path: DocPath  # where the older shape was, in the document as written
    message: str


@dataclass(frozen=True)
class OldKey:
    """A problem of the document as written that no rewrite fixes (a key only an older Olive read, a system type
    olivepress does not run, a template's placeholder); validation reports it as an error."""

    path: DocPath
    message: str
    covers: tuple[DocPath, ...] = ()  # where the later problems it causes are (as written): those are not reported


@dataclass
class Migration:
    document: dict[str, Any]
    rewrites: list[Rewrite]
    old_keys: list[OldKey]
    moves: dict[DocPath, DocPath] = field(default_factory=dict)  # a path in `document` -> where it was written

    def written(self, path: DocPath) -> DocPath:
        """Where the user wrote what is now at `path` (the key as written, `lora_r` for `r`)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.moves:
                return (*self.moves[path[:end]], *path[end:])
        return path


# Keys that only older Olive versions read: (where, key) -> (the Olive versions, what to write instead).
OLD_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("hf_config", "dataset"): ("Olive 0.2-0.4", "a data config in data_configs, named by the pass or metric"),
    ("hf_config", "components"): ("Olive 0.2-0.6", "a document per component, each with a PyTorchModel whose "
                                  "model_loader returns that component (a model of components is not an input model)"),
}
# A value a template leaves for its generator to fill in: `<model_name_placeholder>`, `<<str: model_path>>`.
PLACEHOLDER = re.compile(r"<<\s*[^<>|]+>>|<[A-Za-z][\w: ]{4,}>")
# The AzureML workspace's details in azureml_client: each may also come from the environment or a config.json.
AZUREML_CLIENT_DETAILS = ("subscription_id", "resource_group", "workspace_name", "keyvault_name")
# Olive's system types that olivepress does not run: type -> (the Olive versions, what it does and what to do instead).
REFUSED_SYSTEMS = {
    "Docker": ("Olive 0.2+", "runs the passes in a container it builds, which olivepress does not start: run "
               "olivepress inside the image (docker run IMAGE olivepress run --config ...), or use a PythonEnvironment "
               "system"),
    "IsolatedORT": ("Olive 0.4+", "evaluates ONNX models with the onnxruntime of another environment: use a "
                    "PythonEnvironment system with that environment's python_environment_path"),
}
COMPOSITE_MODEL = ("CompositeModel (Olive 0.6+) is not an input model: olivepress takes one model per document; give "
                   "each component a document of its own (its OnnxModel, or a PyTorchModel whose model_loader returns "
                   "it)")
# The keys of Olive 0.2-0.6's PyTorchModel that name functions of model_script, beside hf_config: the HfModel it becomes
# keeps them (OnnxConversion calls io_config and dummy_inputs_func, as Olive 0.6 did).
HF_CONFIG_SCRIPT_KEYS = ("model_script", "script_dir", "dummy_inputs_func", "io_config")

LORA_TYPES = ("LoRA", "QLoRA", "DoRA")
# Olive's special parameter values (and their 0.1 spellings). Leaving the parameter out means the same here.
_DEFAULT = "the parameter's default, which leaving it out gives; removed"
_SEARCHABLE = "the pass's default search values in a search, else its default; leaving it out gives both; removed"
DEFAULT_MARKERS = {"DEFAULT_VALUE": _DEFAULT, "DEFAULT": _DEFAULT,
                   "SEARCHABLE_VALUES": _SEARCHABLE, "DEFAULT_SEARCH": _SEARCHABLE}
# Olive's older pass names -> olivepress's.
PASS_TYPES = {"AutoAWQQuantizer": "AWQ", "GptqQuantizer": "GPTQ", "GptqModel": "GPTQ",
              "OnnxMatMul4Quantizer": "OnnxMatMulNBits", "OrtPerfTuning": "OrtSessionParamsTuning"}
# GptqModel's (GPTQModel library) settings that olivepress's GPTQ has no use for: key -> why it is dropped.
GPTQMODEL_DROPPED = {
    "device": "the run's accelerator decides where GPTQ runs",
    "damp_auto_increment": "olivepress's GPTQ raises the damping itself when a Hessian is not positive definite",
    "static_groups": "olivepress's GPTQ fixes the groups' scales up front with desc_act (static groups)",
    "true_sequential": "olivepress's GPTQ takes the inputs of a layer's linears in one pass of the layer (not one "
                       "linear after another), then feeds the quantized layer's outputs to the next layer",
}
# GptqModel's defaults where olivepress's GPTQ has others: a document that leaves them out means these.
GPTQMODEL_DEFAULTS = {"sym": True, "damp_percent": 0.05}
# GptqModel's settings that olivepress's GPTQ does not honour: key -> what to do instead.
GPTQMODEL_REFUSED = {
    "dynamic": "GPTQModel's per-module regex settings are not read: give per-module bits/group_size/sym in overrides",
    "rotation": "rotations are a pass of their own: put a QuaRot pass (rotate_mode hadamard or random) before GPTQ",
    "mse": "GPTQModel's MSE scale search is not done: leave it out (olivepress's GPTQ clips by apply_clip)",
}
# Parameters an older Olive (or transformers) spelled differently: older key -> current key. A name that
# current Olive still writes is a pydantic alias of its field instead, and is read without a rewrite.
LORA_RENAMES = {"lora_r": "r", "lora_alpha": "alpha"}
PRE_PROCESS_RENAMES = {"source_max_len": "max_seq_len"}
AUTOAWQ_RENAMES = {"w_bit": "bits"}
# transformers' renames; Olive's LoRA wrote evaluation_strategy until 2025 (microsoft/Olive#1806).
TRAINING_ARGS_RENAMES = {"evaluation_strategy": "eval_strategy", "no_cuda": "use_cpu"}
SEARCH_ALGORITHMS = {"exhaustive": "sequential", "random": "random", "tpe": "tpe"}
# Olive's engine keys that a document may write at the top level, beside those of olivepress's engine section.
OLIVE_ENGINE_KEYS = ("output_name", "packaging_config", "execution_providers")
# Olive 0.2-0.6 data configs: a component's name in `components` / `component_kwargs` -> its current key.
DATA_COMPONENTS = {"load_dataset": "load_dataset_config", "pre_process_data": "pre_process_data_config",
                   "post_process_data": "post_process_data_config", "dataloader": "dataloader_config"}
# Which component reads a `params_config` key, by the keys each component's parameters have.
PARAMS_CONFIG_READERS = (("load_dataset_config", LoadDatasetParams), ("pre_process_data_config", PreProcessParams),
                         ("dataloader_config", DataloaderParams))
EVALUATOR_FOR_METRICS = "common_evaluator"  # the evaluator a top-level `metrics` list becomes
# Keys of Olive's pass entries (RunPassConfig) beside type and config that olivepress does not read.
PASS_ENTRY_KEYS = {
    "host": "a pass's own system (Olive 0.2 and later) is not read: passes run on engine.target; use one target",
    "output_name": "a pass's own output (Olive 0.6) is not written: give the pass a flow of its own in "
                   "pass_flows to have its output in a folder of its own",
}
PASS_EVALUATOR = ("a pass's own evaluator (Olive 0.2+) scores its stage of a pass-by-pass search, and the output of a "
                  "pass flow it ends; olivepress scores those with engine.evaluator: set that instead")
# Olive 0.2-0.6's pass-level data: the pass types that called a `dataloader_func` of the pass's user_script (as
# olivepress names them), and the keys of that call.
DATALOADER_PASSES = ("OnnxStaticQuantization", "OnnxQuantization", "OrtSessionParamsTuning")
DATALOADER_KEYS = ("user_script", "script_dir", "data_dir", "dataloader_func", "dataloader_func_kwargs", "batch_size")
# Metric types whose dataloader_func olivepress reads as it is (evaluation.timing): the others' becomes a data config.
TIMING_METRICS = ("latency", "throughput")


def migrate(document: dict[str, Any]) -> Migration:
    """The document in the current shape (a copy), with every rewrite made and every old key found. Any value
    anywhere is read without an exception: a shape no rule expects is left for validation to report."""
    migration = Migration(copy.deepcopy(document), [], [])
    for rule in RULES:
        rule(migration.document, _Recorder(migration))
    return migration


class _Recorder:
    def __init__(self, migration: Migration):
        self.migration = migration

    def rewrite(self, path: DocPath, message: str) -> None:
        self.migration.rewrites.append(Rewrite(self.migration.written(path), message))

    def moved(self, new: DocPath, old: DocPath) -> None:
        """What is now at `new` was written at `old`: problems found there name `old`."""
        self.migration.moves[new] = self.migration.written(old)

    def old_key(self, holder: dict, path: DocPath, where: str, key: str) -> None:
        """Refuse a key of OLD_KEYS, naming its Olive versions and what to write instead."""
        versions, instead = OLD_KEYS[(where, key)]
        self.refuse(holder, path, key, f"a key of {versions} that olivepress does not read; use {instead}")

    def refuse(self, holder: dict, path: DocPath, key: str, message: str, covers: tuple[DocPath, ...] = ()) -> None:
        """Record a key that cannot be rewritten and take it out, so that validation does not report it a second time;
        the problems found later at `covers` (current paths) are its consequences and are not reported."""
        del holder[key]
        self.problem(path, message, covers)

    def problem(self, path: DocPath, message: str, covers: tuple[DocPath, ...] = ()) -> None:
        """Record a problem of the document as written, leaving it as it is."""
        written = tuple(self.migration.written(place) for place in covers)
        self.migration.old_keys.append(OldKey(self.migration.written(path), message, written))


Rule = Callable[[dict[str, Any], _Recorder], None]


# ---- helpers ---------------------------------------------------------------------------------------

def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (validation reports the value itself)."""
    return value if isinstance(value, dict) else {}


def _holder(entry: dict[str, Any], place: DocPath) -> tuple[dict[str, Any], DocPath]:
    """Where an Olive `{"type": ..., "config": {...}}` entry keeps its parameters: under `config` when given so."""
    nested = entry.get("config")
    return (nested, (*place, "config")) if isinstance(nested, dict) else (entry, place)


def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    """An Olive `{"type": ..., "config": {...}}` entry with its config merged in (the current flat form)."""
    nested = entry.get("config")
    if not isinstance(nested, dict):
        return entry
    return {**{k: v for k, v in entry.items() if k != "config"}, **nested}


def _resource(value: Any) -> str | None:
    """An Olive resource path dict as the current string, or None when `value` is not one (or lacks a part)."""
    if not isinstance(value, dict) or "type" not in value:
        return None
    kind, config = value["type"], _flat(value)
    parts = {key: str(config[key]) for key in ("path", "registry_name", "name", "version", "datastore_name",
                                               "relative_path") if isinstance(config.get(key), (str, int, float))}
    if kind in ("file", "folder", "string_name") and "path" in parts:
        return parts["path"]
    if kind == "azureml_registry_model" and {"registry_name", "name", "version"} <= set(parts):
        return f"azureml://registries/{parts['registry_name']}/models/{parts['name']}/versions/{parts['version']}"
    if kind == "azureml_model" and {"name", "version"} <= set(parts):
        return f"azureml:{parts['name']}:{parts['version']}"
    if kind == "azureml_datastore" and {"datastore_name", "relative_path"} <= set(parts):
        client = _mapping(config.get("azureml_client"))
        workspace = ""
        if all(isinstance(client.get(key), str) for key in ("subscription_id", "resource_group", "workspace_name")):
            workspace = (f"subscriptions/{client['subscription_id']}/resourcegroups/{client['resource_group']}/"
                         f"workspaces/{client['workspace_name']}/")
        return f"azureml://{workspace}datastores/{parts['datastore_name']}/paths/{parts['relative_path']}"
    return None


def _rename(holder: dict, renames: dict[str, str], place: DocPath, note: _Recorder) -> None:
    """Give each older key in `holder` its current name; an older key given beside its current one is refused."""
    for old, new in renames.items():
        if old not in holder:
            continue
        if new in holder:
            note.refuse(holder, (*place, old), old, f"the older name of {new}, which is given too; keep one")
        else:
            holder[new] = holder.pop(old)
            note.rewrite((*place, old), f"renamed {new}")
            note.moved((*place, new), (*place, old))


def _rewrite_resource(holder: dict, key: str, path: DocPath, note: _Recorder) -> None:
    value = holder.get(key)
    values = value if isinstance(value, list) else [value]
    resolved = [_resource(item) for item in values]
    if not any(resolved):
        return
    kinds = sorted({str(item["type"]) for item, new in zip(values, resolved, strict=True) if new})
    new_values = [new or item for item, new in zip(values, resolved, strict=True)]
    holder[key] = new_values if isinstance(value, list) else new_values[0]
    note.rewrite(path, f"the {'/'.join(kinds)} resource became the path {holder[key]!r}")


def _type_names(annotation: Any) -> list[str]:
    """The `type` names of the sections of a discriminated union (InputModelConfig, SystemConfig)."""
    union = typing.get_args(annotation)[0]
    return [name for member in typing.get_args(union) for name in typing.get_args(member.model_fields["type"].annotation)]


def _canonical(value: Any, names: list[str]) -> Any:
    """Olive reads type names case-insensitively: `HFModel` is `HfModel`."""
    if not isinstance(value, str):
        return value
    return next((name for name in names if name.lower() == value.lower()), value)


# ---- rules -----------------------------------------------------------------------------------------

def _placeholders(doc: dict, note: _Recorder) -> None:
    """A template's placeholder is not a value: one line each, instead of what the value is not. In the AzureML
    workspace's details it is a warning: the details are read only when a run reaches the workspace."""
    for path, value in list(_strings(doc, ())):
        if not PLACEHOLDER.fullmatch(value.strip()):
            continue
        if path[:1] == ("azureml_client",) and len(path) == 2 and path[1] in AZUREML_CLIENT_DETAILS:
            del doc["azureml_client"][path[1]]
            note.rewrite(path, f"'{value}' is a template's placeholder; removed: a run that reaches the AzureML "
                               "workspace takes it from the environment (AZUREML_*) or config.json, and stops in one "
                               "line naming where to set it when none has it")
        elif _is_aml_compute(doc, path):
            note.rewrite(path, f"'{value}' is a template's placeholder, kept: a run on this system stops at it, before "
                               "anything is submitted (not an AzureML compute name); write the compute's name")
        else:
            note.problem(path, f"'{value}' is a template's placeholder, not filled in: write the value", (path,))


def _is_aml_compute(doc: dict, path: DocPath) -> bool:
    """Whether `path` is the aml_compute of an AzureML system (flat or under config)."""
    if len(path) not in (3, 4) or path[0] != "systems" or path[-1] != "aml_compute" or path[2:-1] not in ((), ("config",)):
        return False
    system = _mapping(doc["systems"]).get(str(path[1]))
    return isinstance(system, dict) and str(system.get("type")).lower() == "azureml"


def _strings(value: Any, path: DocPath) -> typing.Iterator[tuple[DocPath, str]]:
    if isinstance(value, str):
        yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _strings(item, (*path, key))


def _spellings(doc: dict, note: _Recorder) -> None:
    """Spellings current Olive reads as they are, put into olivepress's one form without a rewrite line: engine keys
    (an inline system as `target`/`host` among them) at the top level, the input model's type in any case."""
    hoisted = [key for key in doc if key in EngineConfig.model_fields or key in OLIVE_ENGINE_KEYS]
    if hoisted and isinstance(doc.get("engine", {}), dict):
        engine = doc.setdefault("engine", {})
        for key in hoisted:
            if key in engine:
                note.refuse(doc, (key,), key, f"'{key}' is given both at the top level and under 'engine'; keep one")
            else:
                engine[key] = doc.pop(key)
                note.moved(("engine", key), (key,))
    model = doc.get("input_model")
    if isinstance(model, dict) and "type" in model:
        model["type"] = _canonical(model["type"], _type_names(InputModelConfig))
    for evaluator_name, evaluator in _mapping(doc.get("evaluators")).items():
        metrics = _mapping(evaluator).get("metrics")
        for index, metric in enumerate(metrics if isinstance(metrics, list) else []):
            if isinstance(metric, dict) and isinstance(metric.get("user_config", {}), dict):
                _metric_user_keys(metric, ("evaluators", evaluator_name, "metrics", index), note)


def _metric_user_keys(metric: dict, place: DocPath, note: _Recorder) -> None:
    """Olive's metric is a nested config of its user_config: a key beside `type` that the metric itself does not
    have belongs to user_config (`inference_settings` written at the metric's level)."""
    for key in [key for key in metric if key not in MetricConfig.model_fields]:
        user = metric.setdefault("user_config", {})
        if key in user:
            continue  # given in both places: validation names the metric-level one
        user[key] = metric.pop(key)
        note.moved((*place, "user_config", key), (*place, key))


def _input_model(doc: dict, note: _Recorder) -> None:
    model = doc.get("input_model")
    if not isinstance(model, dict):
        return
    if str(model.get("type")).lower() == "compositemodel":
        note.refuse(doc, ("input_model",), "input_model", COMPOSITE_MODEL, covers=(("input_model",),))
        return
    if model.get("type") == "PyTorchModel" and isinstance(_flat(model).get("hf_config"), dict):
        model = _pytorch_hf_model(doc, model, note)
    nested = _mapping(model.get("config"))
    for key in ("model_path", "adapter_path"):
        holder, where = (nested, ("input_model", "config", key)) if key in nested else (model, ("input_model", key))
        _rewrite_resource(holder, key, where, note)


def _pytorch_hf_model(doc: dict, model: dict, note: _Recorder) -> dict:
    flat = _flat(model)
    written = ("input_model", *(("config",) if isinstance(model.get("config"), dict) else ()))
    hf = dict(flat.pop("hf_config"))
    for key in list(hf):
        if ("hf_config", key) in OLD_KEYS:
            note.old_key(hf, (*written, "hf_config", key), "hf_config", key)
    scripted = [key for key in HF_CONFIG_SCRIPT_KEYS if key in flat and (key != "io_config" or
                                                                          isinstance(flat[key], str))]
    model_name = hf.pop("model_name", None)
    load_kwargs = {**_mapping(hf.pop("model_loading_args", {})), **_mapping(hf.pop("from_pretrained_args", {}))}
    new: dict[str, Any] = {"type": "HfModel", "model_path": flat.pop("model_path", None) or model_name}
    if "model_path" not in flat and model_name is not None:
        note.moved(("input_model", "model_path"), (*written, "hf_config", "model_name"))
    if "task" in hf:
        new["task"] = hf.pop("task")
        note.moved(("input_model", "task"), (*written, "hf_config", "task"))
    if load_kwargs:
        new["load_kwargs"] = load_kwargs
    flat.pop("type")
    new.update({**flat, **hf})  # adapter_path, and anything else: validated (refused if unknown) as HfModel keys
    for key in hf:
        note.moved(("input_model", key), (*written, "hf_config", key))
    for key in flat:
        note.moved(("input_model", key), (*written, key))
    doc["input_model"] = new
    note.rewrite(("input_model",), "PyTorchModel with hf_config became HfModel "
                                   "(model_name -> model_path, model_loading_args/from_pretrained_args -> load_kwargs)")
    functions = [key for key in scripted if key not in ("model_script", "script_dir")]
    if functions:
        note.rewrite((*written, "model_script"),
                     f"the model is loaded from hf_config, as in Olive 0.2-0.6; {', '.join(functions)} of model_script "
                     "are called when OnnxConversion exports it (also after passes that make a new Hugging Face model "
                     "from it)")
    return new


def _systems(doc: dict, note: _Recorder) -> None:
    engine = _mapping(doc.get("engine"))
    if "workflow_host" in doc and "host" not in engine and isinstance(doc.get("engine", {}), dict):
        doc.setdefault("engine", {})["host"] = doc.pop("workflow_host")  # both given: left for validation to refuse
        note.rewrite(("workflow_host",), "moved to engine.host")
        note.moved(("engine", "host"), ("workflow_host",))
    for role in ("host", "target"):
        if isinstance(engine.get(role), dict) and isinstance(doc.get("systems", {}), dict):
            name = f"{role}_system"
            doc.setdefault("systems", {})[name] = engine[role]
            engine[role] = name
            note.moved(("systems", name), ("engine", role))
            note.rewrite(("engine", role), f"the inline system moved to systems.{name}")
    host = engine.get("host")
    host_system = _mapping(_mapping(doc.get("systems")).get(host)) if isinstance(host, str) else {}
    if host == engine.get("target") and str(host_system.get("type")).lower() == "pythonenvironment":
        del engine["host"]  # Olive 0.2-0.6 ran the passes on the host, evaluations on the target: both in the one system
        note.rewrite(("engine", "host"), f"'{host}' is the target too: passes and evaluations run in that Python "
                                         "environment as engine.target; removed")
    for name, system in list(_mapping(doc.get("systems")).items()):
        if not isinstance(system, dict):
            continue
        if "type" in system:
            system["type"] = _canonical(system["type"], [*_type_names(SystemConfig), *REFUSED_SYSTEMS])
        if isinstance(system.get("type"), str) and system["type"] in REFUSED_SYSTEMS:
            versions, instead = REFUSED_SYSTEMS[system["type"]]
            uses = tuple(("engine", role) for role in ("host", "target") if engine.get(role) == name)
            note.refuse(doc["systems"], ("systems", name), name, f"a {system['type']} system ({versions}) {instead}",
                        covers=uses)
            continue
        holder, place = _holder(system, ("systems", name))
        if holder.get("olive_managed_env") is False:
            del holder["olive_managed_env"]
            note.rewrite((*place, "olive_managed_env"), "false: the environment at python_environment_path is used; "
                                                        "removed")
            if "requirements_file" in holder:
                del holder["requirements_file"]
                note.rewrite((*place, "requirements_file"), "read by Olive only with olive_managed_env: true; removed")
        accelerators = holder.get("accelerators")
        if isinstance(accelerators, list) and any(isinstance(item, str) for item in accelerators):
            holder["accelerators"] = [{"device": item.lower()} if isinstance(item, str) else item for item in accelerators]
            note.rewrite((*place, "accelerators"), "device names became {device: NAME} entries")


def _engine(doc: dict, note: _Recorder) -> None:
    engine = doc.get("engine")
    if not isinstance(engine, dict):
        return
    if "execution_providers" in engine:
        _execution_providers(doc, engine, note)
    if isinstance(engine.get("evaluator"), dict) and isinstance(doc.get("evaluators", {}), dict):
        doc.setdefault("evaluators", {})["engine_evaluator"] = engine["evaluator"]
        engine["evaluator"] = "engine_evaluator"
        note.moved(("evaluators", "engine_evaluator"), ("engine", "evaluator"))
        note.rewrite(("engine", "evaluator"), "the inline evaluator moved to evaluators.engine_evaluator")
    if "search_strategy" in engine:
        _search_strategy(engine, note)
    if "packaging_config" in engine:
        packaging = engine.pop("packaging_config")
        items = packaging if isinstance(packaging, list) else [packaging]
        kinds = sorted({str(_mapping(item).get("type", "?")) for item in items})
        note.rewrite(("engine", "packaging_config"),
                     f"packaging ({'/'.join(kinds)}) is not a step of olivepress: the output folder is written as is; "
                     "register it with `olivepress register`; removed")
    if "output_name" in engine:
        _output_name(engine, note)
    for key in list(engine):
        if ("engine", key) in OLD_KEYS:
            note.old_key(engine, ("engine", key), "engine", key)


def _output_name(engine: dict, note: _Recorder) -> None:
    """Olive 0.2-0.6 named the output files `<output_name>_...` inside output_dir; here the name is a folder."""
    name = engine["output_name"]
    if not isinstance(name, str) or not isinstance(engine.get("output_dir", ""), str):
        return  # validation reports the value
    del engine["output_name"]
    folder = f"{engine.get('output_dir', EngineConfig.model_fields['output_dir'].default)}/{name}"
    engine["output_dir"] = folder
    note.moved(("engine", "output_dir"), ("engine", "output_name"))
    note.rewrite(("engine", "output_name"), f"the output's name became its folder: engine.output_dir {folder}")


def _execution_providers(doc: dict, engine: dict, note: _Recorder) -> None:
    providers = engine["execution_providers"]
    providers = [providers] if isinstance(providers, str) else providers
    if not isinstance(providers, list) or not providers or not all(isinstance(p, str) for p in providers) \
            or not isinstance(doc.get("systems", {}), dict):
        return  # validation reports the value
    del engine["execution_providers"]
    device = device_of(providers[0])
    systems = doc.setdefault("systems", {})
    target = engine.get("target")
    if target is None:
        target = engine["target"] = "local_system"
        systems.setdefault(target, {"type": "LocalSystem"})
    system = systems.get(target) if isinstance(target, str) else None
    if not isinstance(system, dict):
        return  # a dangling engine.target: validation names it
    holder = system["config"] if isinstance(system.get("config"), dict) else system
    accelerators = holder.setdefault("accelerators", [{"device": device}])
    if isinstance(accelerators, list) and not accelerators:
        accelerators.append({"device": device})
    if isinstance(accelerators, list) and isinstance(accelerators[0], dict):
        accelerators[0].setdefault("execution_providers", providers)
    note.rewrite(("engine", "execution_providers"), f"moved to systems.{target}.accelerators[0].execution_providers")


def _search_strategy(engine: dict, note: _Recorder) -> None:
    strategy = engine["search_strategy"]
    if strategy is False:
        del engine["search_strategy"]
        note.rewrite(("engine", "search_strategy"), "false is the default (each pass runs once as written); removed")
    elif strategy is True:
        engine["search_strategy"] = {"execution_order": "joint", "sampler": "sequential"}
        note.rewrite(("engine", "search_strategy"), "true became {execution_order: joint, sampler: sequential}")
    elif isinstance(strategy, dict) and "search_algorithm" in strategy:
        algorithm = strategy.pop("search_algorithm")
        strategy["sampler"] = SEARCH_ALGORITHMS.get(algorithm, algorithm) if isinstance(algorithm, str) else algorithm
        note.moved(("engine", "search_strategy", "sampler"), ("engine", "search_strategy", "search_algorithm"))
        algorithm_config = strategy.pop("search_algorithm_config", None)
        for old, new in (("num_samples", "max_samples"), ("seed", "seed")):
            if old in _mapping(algorithm_config):
                strategy[new] = algorithm_config[old]
                note.moved(("engine", "search_strategy", new),
                           ("engine", "search_strategy", "search_algorithm_config", old))
        note.rewrite(("engine", "search_strategy", "search_algorithm"),
                     f"{algorithm} became sampler: {strategy['sampler']}")


def _data_configs(doc: dict, note: _Recorder) -> None:
    data_configs = doc.get("data_configs")
    for index, data in enumerate(data_configs if isinstance(data_configs, list) else []):
        if not isinstance(data, dict):
            continue
        place = ("data_configs", index)
        for key in list(data):
            if ("data_config", key) in OLD_KEYS:
                note.old_key(data, (*place, key), "data_config", key)
        if isinstance(data.get("components"), dict):
            _components(data, place, note)
        if isinstance(data.get("params_config"), dict):
            _params_config(data, place, note)
        load = data.get("load_dataset_config")
        if isinstance(load, dict):
            params, where = (load["params"], ("params",)) if isinstance(load.get("params"), dict) else (load, ())
            for key in ("data_files", "data_dir"):
                _rewrite_resource(params, key, (*place, "load_dataset_config", *where, key), note)
        pre = data.get("pre_process_data_config")
        if isinstance(pre, dict):
            params, where = (pre["params"], ("params",)) if isinstance(pre.get("params"), dict) else (pre, ())
            base = (*place, "pre_process_data_config", *where)
            if params.get("dataset_type") == "corpus":
                del params["dataset_type"]
                note.rewrite((*base, "dataset_type"), "corpus is what text pre-processing does; removed")
            _rename(params, PRE_PROCESS_RENAMES, base, note)


def _components(data: dict, place: DocPath, note: _Recorder) -> None:
    """Olive 0.2-0.6's `components: {load_dataset: {...}, ...}`: each is the current `<component>_config`."""
    components = data.pop("components")
    for name, component in components.items():
        key = DATA_COMPONENTS.get(name, name)
        if key in data:
            note.refuse(components, (*place, "components", name), name, f"{key} is given too; keep one")
            continue
        data[key] = component
        note.moved((*place, key), (*place, "components", name))
    note.rewrite((*place, "components"), f"became {', '.join(DATA_COMPONENTS.get(n, n) for n in components)}")


def _params_config(data: dict, place: DocPath, note: _Recorder) -> None:
    """Olive 0.2-0.6's `params_config`: each parameter goes to the components that read it (unknown ones to
    pre-processing, whose validation names them), `component_kwargs` to the component it names."""
    params_config = data.pop("params_config")
    where = (*place, "params_config")
    for key, value in params_config.items():
        if key == "component_kwargs":
            for component, kwargs in _mapping(value).items():
                component_key = DATA_COMPONENTS.get(component, component)
                for name, item in _mapping(kwargs).items():
                    _add_param(data, component_key, name, item, (*where, key, component, name), note)
            continue
        readers = [component for component, params in PARAMS_CONFIG_READERS if key in params.keys_of_fields()]
        for component in readers or ["pre_process_data_config"]:
            _add_param(data, component, key, value, (*where, key), note)
    note.rewrite(where, "its parameters went to the components that read them")


def _add_param(data: dict, component: str, key: str, value: Any, written: DocPath, note: _Recorder) -> None:
    entry = data.setdefault(component, {})
    if not isinstance(entry, dict):
        return
    params = entry.setdefault("params", {})
    if not isinstance(params, dict) or key in params or key in entry:
        return  # given in the component too: the component's own value stays
    params[key] = value
    note.moved((*written[:2], component, "params", key), written)


def _passes(doc: dict, note: _Recorder) -> None:
    for name, entry in _mapping(doc.get("passes")).items():
        if not isinstance(entry, dict):
            continue
        holder, place = _holder(entry, ("passes", name))
        for key, value in list(holder.items()):
            if isinstance(value, str) and value in DEFAULT_MARKERS:
                del holder[key]
                note.rewrite((*place, key), f"{value} means {DEFAULT_MARKERS[value]}")
        for owner, where in ((entry, ("passes", name)), (holder, place)):
            if owner.get("disable_search") is True:
                del owner["disable_search"]
                note.rewrite((*where, "disable_search"), "true is the default without a search; removed")
        for key, message in PASS_ENTRY_KEYS.items():
            if key in entry:
                note.refuse(entry, ("passes", name, key), key, message)
        if "clean_run_cache" in entry:
            del entry["clean_run_cache"]
            note.rewrite(("passes", name, "clean_run_cache"), "the cache is keyed by content, so a changed pass runs "
                                                              "again; `olivepress cache clean` empties it; removed")
        if isinstance(entry.get("type"), str) and entry["type"] in PASS_TYPES:
            old_type = entry["type"]
            entry["type"] = PASS_TYPES[old_type]
            note.rewrite(("passes", name, "type"), f"{old_type} is now {entry['type']}")
            if old_type == "AutoAWQQuantizer":
                _autoawq_params(holder, place, note)
            if old_type == "GptqModel":
                _gptqmodel_params(holder, place, note)
        if entry.get("type") == "ExtractAdapters" and "make_inputs" in holder:
            _make_inputs(holder, place, note)
        if entry.get("type") not in LORA_TYPES:
            continue
        _rename(holder, LORA_RENAMES, place, note)
        if entry["type"] == "LoRA" and holder.get("double_quant"):
            entry["type"] = "QLoRA"
            note.rewrite(("passes", name, "type"), "LoRA with double_quant trains on a 4-bit base: the pass is QLoRA")
        training = holder.get("training_args")
        if isinstance(training, dict):
            _training_args(training, (*place, "training_args"), note)


def _dataloader_funcs(doc: dict, note: _Recorder) -> None:
    """Olive 0.2-0.6 read data on a pass or a metric through `dataloader_func` of `user_script`, called as
    func(data_dir, batch_size, **kwargs); each becomes a data config whose dataloader is called so (call: data_dir),
    named by the pass or metric."""
    if not isinstance(doc.get("data_configs", []), list):
        return
    for name, entry in _mapping(doc.get("passes")).items():
        if isinstance(entry, dict) and entry.get("type") in DATALOADER_PASSES:
            holder, place = _holder(entry, ("passes", name))
            if isinstance(holder.get("dataloader_func"), str):
                _to_data_config(doc, holder, place, f"{name}_data", note)
    for evaluator_name, evaluator in _mapping(doc.get("evaluators")).items():
        metrics = _mapping(evaluator).get("metrics")
        for index, metric in enumerate(metrics if isinstance(metrics, list) else []):
            if not isinstance(metric, dict):
                continue
            user = _mapping(metric.get("user_config"))
            if isinstance(user.get("data_dir"), dict):
                _rewrite_resource(user, "data_dir", ("evaluators", evaluator_name, "metrics", index, "user_config",
                                                     "data_dir"), note)
            reads_own_data = metric.get("type") in TIMING_METRICS or (metric.get("type") == "custom"
                                                                       and "evaluate_func" in user)
            if isinstance(user.get("dataloader_func"), str) and not reads_own_data:
                place = ("evaluators", evaluator_name, "metrics", index)
                _to_data_config(doc, metric, place, f"{evaluator_name}_{metric.get('name', index)}_data", note,
                                user=user)


def _to_data_config(doc: dict, owner: dict, place: DocPath, name: str, note: _Recorder,
                    user: dict | None = None) -> None:
    """Move the dataloader_func keys of a pass (`owner` holds them) or of a metric's `user` config into a new data
    config, and name it in the owner's data_config. A metric keeps its user_script for its other functions."""
    holder, where = (user, (*place, "user_config")) if user is not None else (owner, place)
    if owner.get("data_config") is not None:
        others = tuple((*where, key) for key in DATALOADER_KEYS if key in holder and key != "dataloader_func")
        note.refuse(holder, (*where, "dataloader_func"), "dataloader_func",
                    "Olive 0.2-0.6's dataloader_func is given beside data_config; keep one", covers=others)
        return
    names = {item.get("name") for item in doc.get("data_configs", []) if isinstance(item, dict)}
    while name in names:
        name += "_"
    data: dict[str, Any] = {"name": name, "type": "DataContainer"}
    index = len(doc.setdefault("data_configs", []))
    target = ("data_configs", index)
    moved = {"user_script": (*target, "user_script"), "script_dir": (*target, "script_dir"),
             "data_dir": (*target, "load_dataset_config", "params", "data_dir"),
             "dataloader_func": (*target, "dataloader_config", "type"),
             "batch_size": (*target, "dataloader_config", "params", "batch_size")}
    kwargs_key = "dataloader_func_kwargs"
    if user is not None:  # a metric: its functions' keyword arguments are under func_kwargs
        kwargs_key = "func_kwargs"
    keep_script = user is not None and any(key in holder for key in ("post_processing_func", "metric_func"))
    for key, new in moved.items():
        if key not in holder:
            continue
        value = holder[key] if key in ("user_script", "script_dir") and keep_script else holder.pop(key)
        _put(data, new[2:], value)
        note.moved(new, (*where, key))
    kwargs = holder.get(kwargs_key)
    if user is not None:
        kwargs = _mapping(kwargs).get("dataloader_func")
        if kwargs is not None:
            holder["func_kwargs"].pop("dataloader_func")
            if not holder["func_kwargs"]:
                del holder["func_kwargs"]
    elif isinstance(kwargs, dict):
        holder.pop(kwargs_key)
    for key, value in _mapping(kwargs).items():
        _put(data, ("dataloader_config", "params", key), value)
        written = (*where, "func_kwargs", "dataloader_func", key) if user is not None else (*where, kwargs_key, key)
        note.moved((*target, "dataloader_config", "params", key), written)
    data["dataloader_config"]["call"] = "data_dir"
    doc["data_configs"].append(data)
    load = _mapping(data.get("load_dataset_config"))
    if "params" in load:
        _rewrite_resource(load["params"], "data_dir", (*target, "load_dataset_config", "params", "data_dir"), note)
    owner["data_config"] = name
    note.moved((*place, "data_config"), (*where, "dataloader_func"))
    note.rewrite((*where, "dataloader_func"), f"Olive 0.2-0.6's dataloader_func became data config '{name}', "
                                              "which calls it as Olive did: func(data_dir, batch_size, **kwargs)")


def _put(holder: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        holder = holder.setdefault(key, {})
    holder[path[-1]] = value


def _pass_evaluators(doc: dict, note: _Recorder) -> None:
    """Olive scores the output with the last pass's evaluator, else engine.evaluator (its evaluator_for_pass); the
    other passes' evaluators it reads only in a pass-by-pass search or at the end of a pass flow."""
    passes = _mapping(doc.get("passes"))
    named = [name for name, entry in passes.items() if isinstance(entry, dict) and "evaluator" in entry]
    engine = doc.get("engine", {})
    if not named or not isinstance(engine, dict) or not isinstance(doc.get("evaluators", {}), dict):
        return
    if "pass_flows" in doc or _mapping(engine.get("search_strategy")).get("execution_order") == "pass-by-pass":
        for name in named:
            note.refuse(passes[name], ("passes", name, "evaluator"), "evaluator", PASS_EVALUATOR)
        return
    last = list(passes)[-1]
    for name in named:
        value = passes[name].pop("evaluator")
        place = ("passes", name, "evaluator")
        if name != last or value is None:
            note.rewrite(place, "null is engine.evaluator; removed" if value is None else "Olive scores only the last "
                                "pass's output with its evaluator outside a pass-by-pass search; removed")
            continue
        if isinstance(value, dict):  # given inline: it becomes an entry of `evaluators`
            doc.setdefault("evaluators", {})[f"{name}_evaluator"] = value
            note.moved(("evaluators", f"{name}_evaluator"), place)
            value = f"{name}_evaluator"
        doc.setdefault("engine", {})["evaluator"] = value
        note.moved(("engine", "evaluator"), place)
        note.rewrite(place, f"the last pass's evaluator scores the output, as in Olive: engine.evaluator {value}")


def _make_inputs(holder: dict, place: DocPath, note: _Recorder) -> None:
    """Olive 0.6's ExtractAdapters made the LoRA weights graph inputs (make_inputs: true, its default) or kept them as
    initializers in external data (false); olivepress's ExtractAdapters always makes them inputs."""
    if holder["make_inputs"] is True:
        del holder["make_inputs"]
        note.rewrite((*place, "make_inputs"), "true is what ExtractAdapters does (the LoRA weights become inputs); "
                                              "removed")
    elif holder["make_inputs"] is False:
        note.refuse(holder, (*place, "make_inputs"), "make_inputs",
                    "false (Olive 0.6: the adapter weights stay initializers, in external data) is not written by "
                    "olivepress's ExtractAdapters, which makes them inputs; for a model with the adapter folded in, "
                    "merge it before the export (MergeAdapterWeights)")


def _autoawq_params(holder: dict, place: DocPath, note: _Recorder) -> None:
    _rename(holder, AUTOAWQ_RENAMES, place, note)
    if "zero_point" in holder and isinstance(holder["zero_point"], bool):
        holder["sym"] = not holder.pop("zero_point")
        note.moved((*place, "sym"), (*place, "zero_point"))
        note.rewrite((*place, "zero_point"), f"became sym: {str(holder['sym']).lower()}")
    if str(holder.get("version", "")).lower() == "gemm":
        del holder["version"]
        note.rewrite((*place, "version"), "gemm is the layout olivepress writes; removed")


def _gptqmodel_params(holder: dict, place: DocPath, note: _Recorder) -> None:
    """GptqModel (Olive's pass over the GPTQModel library) means GPTQ: its settings as olivepress's GPTQ reads them.
    Its default group_size is -1 (one group per output channel), which MatMulNBits cannot hold."""
    if holder.get("group_size", -1) == -1:
        if "group_size" in holder:
            note.refuse(holder, (*place, "group_size"), "group_size", "-1 (per-channel, GptqModel's default) is not "
                        "written by olivepress: MatMulNBits quantizes in groups; give group_size 32, 64 or 128")
        else:
            note.problem((*place, "type"), "GptqModel quantizes per channel by default (group_size -1), which "
                         "olivepress does not write: MatMulNBits quantizes in groups; give group_size 32, 64 or 128")
    for key, value in GPTQMODEL_DEFAULTS.items():
        if key not in holder:
            holder[key] = value
            note.rewrite((*place, "type"), f"GptqModel's default {key} {str(value).lower()} written out")
    for key, why in GPTQMODEL_DROPPED.items():
        if key in holder:
            del holder[key]
            note.rewrite((*place, key), f"not read: {why}; removed")
    for key, instead in GPTQMODEL_REFUSED.items():
        if holder.get(key) not in (None, 0, 0.0):
            note.refuse(holder, (*place, key), key, instead)
        else:
            holder.pop(key, None)


def _training_args(training: dict, place: DocPath, note: _Recorder) -> None:
    """TrainingArguments that transformers renamed since the cookbook was written."""
    _rename(training, TRAINING_ARGS_RENAMES, place, note)
    if "group_by_length" in training and "train_sampling_strategy" not in training:
        if training.pop("group_by_length"):
            training["train_sampling_strategy"] = "group_by_length"
            note.moved((*place, "train_sampling_strategy"), (*place, "group_by_length"))
            note.rewrite((*place, "group_by_length"), "true became train_sampling_strategy: group_by_length")
        else:
            note.rewrite((*place, "group_by_length"), "false is the default sampling; removed")


def _top_level(doc: dict, note: _Recorder) -> None:
    if "auto_optimizer_config" in doc:
        _auto_optimizer(doc, note)
    if isinstance(doc.get("metrics"), list) and EVALUATOR_FOR_METRICS not in _mapping(doc.get("evaluators")) \
            and isinstance(doc.get("evaluators", {}), dict) and isinstance(doc.get("engine", {}), dict):
        doc.setdefault("evaluators", {})[EVALUATOR_FOR_METRICS] = {"metrics": doc.pop("metrics")}
        note.moved(("evaluators", EVALUATOR_FOR_METRICS, "metrics"), ("metrics",))
        engine = doc.setdefault("engine", {})
        message = f"became evaluators.{EVALUATOR_FOR_METRICS}"
        if "evaluator" not in engine:
            engine["evaluator"] = EVALUATOR_FOR_METRICS
            message += ", the engine's evaluator"
        note.rewrite(("metrics",), message)
    for key in list(doc):
        if ("", key) in OLD_KEYS:
            note.old_key(doc, (key,), "", key)


def _auto_optimizer(doc: dict, note: _Recorder) -> None:
    """Olive 0.6-0.9 choose passes themselves only when `passes` is empty and the auto optimizer is not disabled."""
    config = _mapping(doc["auto_optimizer_config"])
    if doc.get("passes") and not isinstance(doc.get("passes"), (dict, list)):
        return
    if doc.get("passes"):
        del doc["auto_optimizer_config"]
        note.rewrite(("auto_optimizer_config",), "Olive's auto optimizer only runs when `passes` is empty; removed")
    elif config.get("disable_auto_optimizer") is True:
        del doc["auto_optimizer_config"]
        note.rewrite(("auto_optimizer_config",), "disable_auto_optimizer: true is what olivepress does without passes "
                                                 "(the input model is evaluated); removed")
    else:
        note.refuse(doc, ("auto_optimizer_config",), "auto_optimizer_config",
                    "Olive 0.6-0.9's auto optimizer chooses passes for an empty `passes`; olivepress does that in "
                    "`olivepress auto-opt`; or list the passes")


RULES: tuple[Rule, ...] = (_placeholders, _spellings, _top_level, _input_model, _systems, _engine, _data_configs, _passes,
                           _dataloader_funcs, _pass_evaluators)
