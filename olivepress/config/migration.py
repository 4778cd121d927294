"""Rewriting older Olive document shapes into the current one, a recorded rewrite each.

Each rule recognizes one older shape (the ones in the Phi-3 cookbook and Olive's examples up to
0.7) and rewrites it in place. Anything no rule knows is left for validation to refuse, and a key
that only an older Olive read is refused here, naming its version and the current spelling, as is an
older name given beside its current one. Nothing is dropped silently: every rewrite, removals
included, is reported. Spellings that current Olive still writes are not rewritten: they are aliases
of the pass's fields, read as they are.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from olivepress.config.source import DocPath
from olivepress.hardware import device_of


@dataclass(frozen=True)
class Rewrite:
    path: DocPath  # where the older shape was, in the document as written
    message: str


@dataclass(frozen=True)
class OldKey:
    """A key of an older Olive that cannot be rewritten; validation reports it as an error."""

    path: DocPath
    message: str


@dataclass
class Migration:
    document: dict[str, Any]
    rewrites: list[Rewrite]
    old_keys: list[OldKey]


# Keys that only older Olive versions read: (where, key) -> (the Olive versions, what to write instead).
OLD_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("engine", "output_name"): ("Olive 0.2-0.6", "engine.output_dir (the output folder's name)"),
    ("engine", "plot_pareto_frontier"): ("Olive 0.2-0.7", "nothing: a search always writes report.md with pareto.png"),
    ("", "auto_optimizer_config"): ("Olive 0.7", "`olivepress auto-opt`"),
    ("", "pass_flows"): ("Olive 0.2-0.7", "one `passes` list; alternative passes at one step are a search dimension"),
    ("data_config", "params_config"): ("Olive 0.2-0.4", "load_dataset_config / pre_process_data_config params"),
    ("data_config", "components"): ("Olive 0.2-0.4", "load_dataset_config / pre_process_data_config / dataloader_config"),
    ("hf_config", "dataset"): ("Olive 0.2-0.4", "a data config in data_configs, named by the pass or metric"),
}

LORA_TYPES = ("LoRA", "QLoRA", "DoRA")
# Olive's special parameter values (and their 0.1 spellings). Leaving the parameter out means the same here.
_DEFAULT = "the parameter's default, which leaving it out gives; removed"
_SEARCHABLE = "the pass's default search values in a search, else its default; leaving it out gives both; removed"
DEFAULT_MARKERS = {"DEFAULT_VALUE": _DEFAULT, "DEFAULT": _DEFAULT,
                   "SEARCHABLE_VALUES": _SEARCHABLE, "DEFAULT_SEARCH": _SEARCHABLE}
# Olive's older pass names -> olivepress's.
PASS_TYPES = {"AutoAWQQuantizer": "AWQ", "GptqQuantizer": "GPTQ", "OnnxMatMul4Quantizer": "OnnxMatMulNBits"}
# Parameters an older Olive (or transformers) spelled differently: older key -> current key. A name that
# current Olive still writes is a pydantic alias of its field instead, and is read without a rewrite.
LORA_RENAMES = {"lora_r": "r", "lora_alpha": "alpha"}
PRE_PROCESS_RENAMES = {"source_max_len": "max_seq_len"}
AUTOAWQ_RENAMES = {"w_bit": "bits"}
# transformers' renames; Olive's LoRA wrote evaluation_strategy until 2025 (microsoft/Olive#1806).
TRAINING_ARGS_RENAMES = {"evaluation_strategy": "eval_strategy", "no_cuda": "use_cpu"}
SEARCH_ALGORITHMS = {"exhaustive": "sequential", "random": "random", "tpe": "tpe"}


def migrate(document: dict[str, Any]) -> Migration:
    """The document in the current shape (a copy), with every rewrite made and every old key found."""
    migration = Migration(copy.deepcopy(document), [], [])
    for rule in RULES:
        rule(migration.document, _Recorder(migration))
    return migration


class _Recorder:
    def __init__(self, migration: Migration):
        self.migration = migration

    def rewrite(self, path: DocPath, message: str) -> None:
        self.migration.rewrites.append(Rewrite(path, message))

    def old_key(self, holder: dict, path: DocPath, where: str, key: str) -> None:
        """Refuse a key of OLD_KEYS, naming its Olive versions and what to write instead."""
        versions, instead = OLD_KEYS[(where, key)]
        self.refuse(holder, path, key, f"a key of {versions} that olivepress does not read; use {instead}")

    def refuse(self, holder: dict, path: DocPath, key: str, message: str) -> None:
        """Record a key that cannot be rewritten and take it out, so that validation does not report it a second time."""
        del holder[key]
        self.migration.old_keys.append(OldKey(path, message))


Rule = Callable[[dict[str, Any], _Recorder], None]


# ---- helpers ---------------------------------------------------------------------------------------

def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    """An Olive `{"type": ..., "config": {...}}` entry with its config merged in (the current flat form)."""
    nested = entry.get("config")
    if not isinstance(nested, dict):
        return entry
    return {**{k: v for k, v in entry.items() if k != "config"}, **nested}


def _resource(value: Any) -> str | None:
    """An Olive resource path dict as the current string, or None when `value` is not one."""
    if not isinstance(value, dict) or "type" not in value:
        return None
    kind, config = value["type"], _flat(value)
    if kind in ("file", "folder", "string_name") and "path" in config:
        return str(config["path"])
    if kind == "azureml_registry_model":
        return f"azureml://registries/{config['registry_name']}/models/{config['name']}/versions/{config['version']}"
    if kind == "azureml_model":
        return f"azureml:{config['name']}:{config['version']}"
    if kind == "azureml_datastore":
        client = config.get("azureml_client") or {}
        workspace = ""
        if all(key in client for key in ("subscription_id", "resource_group", "workspace_name")):
            workspace = (f"subscriptions/{client['subscription_id']}/resourcegroups/{client['resource_group']}/"
                         f"workspaces/{client['workspace_name']}/")
        return f"azureml://{workspace}datastores/{config['datastore_name']}/paths/{config['relative_path']}"
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


def _rewrite_resource(holder: dict, key: str, path: DocPath, note: _Recorder) -> None:
    value = holder.get(key)
    values = value if isinstance(value, list) else [value]
    resolved = [_resource(item) for item in values]
    if not any(resolved):
        return
    kinds = sorted({item["type"] for item, new in zip(values, resolved, strict=True) if new})
    new_values = [new or item for item, new in zip(values, resolved, strict=True)]
    holder[key] = new_values if isinstance(value, list) else new_values[0]
    note.rewrite(path, f"the {'/'.join(kinds)} resource became the path {holder[key]!r}")


# ---- rules -----------------------------------------------------------------------------------------

def _input_model(doc: dict, note: _Recorder) -> None:
    model = doc.get("input_model")
    if not isinstance(model, dict):
        return
    if model.get("type") == "PyTorchModel" and isinstance(_flat(model).get("hf_config"), dict):
        flat = _flat(model)
        hf = dict(flat.pop("hf_config"))
        for key in list(hf):
            if ("hf_config", key) in OLD_KEYS:
                note.old_key(hf, ("input_model", "config", "hf_config", key), "hf_config", key)
        model_name = hf.pop("model_name", None)
        load_kwargs = {**hf.pop("model_loading_args", {}), **hf.pop("from_pretrained_args", {})}
        new: dict[str, Any] = {"type": "HfModel", "model_path": flat.pop("model_path", None) or model_name}
        if "task" in hf:
            new["task"] = hf.pop("task")
        if load_kwargs:
            new["load_kwargs"] = load_kwargs
        flat.pop("type")
        new.update({**flat, **hf})  # adapter_path, and anything else: validated (refused if unknown) as HfModel keys
        doc["input_model"] = new
        note.rewrite(("input_model",), "PyTorchModel with hf_config became HfModel "
                                       "(model_name -> model_path, model_loading_args/from_pretrained_args -> load_kwargs)")
        model = new
    nested = model["config"] if isinstance(model.get("config"), dict) else {}
    for key in ("model_path", "adapter_path"):
        holder, where = (nested, ("input_model", "config", key)) if key in nested else (model, ("input_model", key))
        _rewrite_resource(holder, key, where, note)


def _systems(doc: dict, note: _Recorder) -> None:
    found = doc.get("engine")
    engine: dict[str, Any] = found if isinstance(found, dict) else {}
    if "workflow_host" in doc and "host" not in engine:  # both given: left for validation to refuse
        doc.setdefault("engine", {})["host"] = doc.pop("workflow_host")
        note.rewrite(("workflow_host",), "moved to engine.host")
    for role in ("host", "target"):
        if isinstance(engine.get(role), dict):
            name = f"{role}_system"
            doc.setdefault("systems", {})[name] = engine[role]
            engine[role] = name
            note.rewrite(("engine", role), f"the inline system moved to systems.{name}")
    for name, system in (doc.get("systems") or {}).items():
        if not isinstance(system, dict):
            continue
        holder = system["config"] if isinstance(system.get("config"), dict) else system
        accelerators = holder.get("accelerators")
        if isinstance(accelerators, list) and any(isinstance(item, str) for item in accelerators):
            holder["accelerators"] = [{"device": item.lower()} if isinstance(item, str) else item for item in accelerators]
            place = ("systems", name, *(("config",) if holder is not system else ()), "accelerators")
            note.rewrite(place, "device names became {device: NAME} entries")


def _engine(doc: dict, note: _Recorder) -> None:
    engine = doc.get("engine")
    if not isinstance(engine, dict):
        return
    if "execution_providers" in engine:
        _execution_providers(doc, engine, note)
    if isinstance(engine.get("evaluator"), dict):
        doc.setdefault("evaluators", {})["engine_evaluator"] = engine["evaluator"]
        engine["evaluator"] = "engine_evaluator"
        note.rewrite(("engine", "evaluator"), "the inline evaluator moved to evaluators.engine_evaluator")
    if "search_strategy" in engine:
        _search_strategy(engine, note)
    if "packaging_config" in engine:
        packaging = engine.pop("packaging_config")
        kinds = sorted({item.get("type", "?") for item in (packaging if isinstance(packaging, list) else [packaging])})
        note.rewrite(("engine", "packaging_config"),
                     f"packaging ({'/'.join(kinds)}) is not a step of olivepress: the output folder is written as is; "
                     "register it with `olivepress register`; removed")
    for key in list(engine):
        if ("engine", key) in OLD_KEYS:
            note.old_key(engine, ("engine", key), "engine", key)


def _execution_providers(doc: dict, engine: dict, note: _Recorder) -> None:
    providers = engine.pop("execution_providers")
    providers = [providers] if isinstance(providers, str) else list(providers)
    device = device_of(providers[0])
    systems = doc.setdefault("systems", {})
    target = engine.get("target")
    if target is None:
        target = engine["target"] = "local_system"
        systems.setdefault(target, {"type": "LocalSystem"})
    system = systems.get(target)
    if not isinstance(system, dict):
        return  # a dangling engine.target: validation names it
    holder = system["config"] if isinstance(system.get("config"), dict) else system
    accelerators = holder.setdefault("accelerators", [{"device": device}])
    if not accelerators:
        accelerators.append({"device": device})
    if isinstance(accelerators[0], dict):
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
        strategy["sampler"] = SEARCH_ALGORITHMS.get(algorithm, algorithm)
        for old, new in (("num_samples", "max_samples"), ("seed", "seed")):
            if old in (strategy.get("search_algorithm_config") or {}):
                strategy[new] = strategy["search_algorithm_config"][old]
        strategy.pop("search_algorithm_config", None)
        note.rewrite(("engine", "search_strategy", "search_algorithm"),
                     f"{algorithm} became sampler: {strategy['sampler']}")


def _data_configs(doc: dict, note: _Recorder) -> None:
    for index, data in enumerate(doc.get("data_configs") or []):
        if not isinstance(data, dict):
            continue
        for key in list(data):
            if ("data_config", key) in OLD_KEYS:
                note.old_key(data, ("data_configs", index, key), "data_config", key)
        load = data.get("load_dataset_config")
        if isinstance(load, dict):
            params, place = (load["params"], ("params",)) if isinstance(load.get("params"), dict) else (load, ())
            _rewrite_resource(params, "data_files", ("data_configs", index, "load_dataset_config", *place, "data_files"), note)
        pre = data.get("pre_process_data_config")
        if isinstance(pre, dict):
            params, place = (pre["params"], ("params",)) if isinstance(pre.get("params"), dict) else (pre, ())
            base = ("data_configs", index, "pre_process_data_config", *place)
            if params.get("dataset_type") == "corpus":
                del params["dataset_type"]
                note.rewrite((*base, "dataset_type"), "corpus is what text pre-processing does; removed")
            _rename(params, PRE_PROCESS_RENAMES, base, note)


def _passes(doc: dict, note: _Recorder) -> None:
    for name, entry in (doc.get("passes") or {}).items():
        if not isinstance(entry, dict):
            continue
        nested = isinstance(entry.get("config"), dict)
        holder, place = (entry["config"], ("passes", name, "config")) if nested else (entry, ("passes", name))
        for key, value in list(holder.items()):
            if isinstance(value, str) and value in DEFAULT_MARKERS:
                del holder[key]
                note.rewrite((*place, key), f"{value} means {DEFAULT_MARKERS[value]}")
        if holder.get("disable_search") is True:
            del holder["disable_search"]
            note.rewrite((*place, "disable_search"), "true is the default without a search; removed")
        if entry.get("type") in PASS_TYPES:
            old_type = entry["type"]
            entry["type"] = PASS_TYPES[old_type]
            note.rewrite(("passes", name, "type"), f"{old_type} is now {entry['type']}")
            if old_type == "AutoAWQQuantizer":
                _autoawq_params(holder, place, note)
        if entry.get("type") not in LORA_TYPES:
            continue
        _rename(holder, LORA_RENAMES, place, note)
        if entry["type"] == "LoRA" and holder.get("double_quant"):
            entry["type"] = "QLoRA"
            note.rewrite(("passes", name, "type"), "LoRA with double_quant trains on a 4-bit base: the pass is QLoRA")
        training = holder.get("training_args")
        if isinstance(training, dict):
            _training_args(training, (*place, "training_args"), note)


def _autoawq_params(holder: dict, place: DocPath, note: _Recorder) -> None:
    _rename(holder, AUTOAWQ_RENAMES, place, note)
    if "zero_point" in holder:
        holder["sym"] = not holder.pop("zero_point")
        note.rewrite((*place, "zero_point"), f"became sym: {str(holder['sym']).lower()}")
    if str(holder.get("version", "")).lower() == "gemm":
        del holder["version"]
        note.rewrite((*place, "version"), "gemm is the layout olivepress writes; removed")


def _training_args(training: dict, place: DocPath, note: _Recorder) -> None:
    """TrainingArguments that transformers renamed since the cookbook was written."""
    _rename(training, TRAINING_ARGS_RENAMES, place, note)
    if "group_by_length" in training and "train_sampling_strategy" not in training:
        if training.pop("group_by_length"):
            training["train_sampling_strategy"] = "group_by_length"
            note.rewrite((*place, "group_by_length"), "true became train_sampling_strategy: group_by_length")
        else:
            note.rewrite((*place, "group_by_length"), "false is the default sampling; removed")


def _top_level(doc: dict, note: _Recorder) -> None:
    for key in list(doc):
        if ("", key) in OLD_KEYS:
            note.old_key(doc, (key,), "", key)


RULES: tuple[Rule, ...] = (_top_level, _input_model, _systems, _engine, _data_configs, _passes)
