"""Model handles: what a pass takes and makes. A handle names files; it never holds weights."""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from olivepress.errors import OlivepressError

ModelKind = Literal["hf", "onnx", "pytorch", "composite"]

# The keys of `to_config()` that hold file-system paths; the cache and the output folder rewrite them.
PATH_FIELDS = ("model_path", "adapter_path", "model_script", "script_dir")


@dataclass(frozen=True)
class HfModel:
    """A Hugging Face folder, optionally with a PEFT adapter on top."""

    path: Path
    adapter_path: Path | None = None
    task: str = "text-generation"
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    # the graph's inputs and outputs for OnnxConversion (Olive's io_config): a dict, or the name of a function of
    # model_script (Olive 0.2-0.6's PyTorchModel with hf_config took its export functions from model_script)
    io_config: dict[str, Any] | str | None = None
    model_class: str | None = None  # the transformers class to load it with, instead of the task's Auto class
    model_script: Path | None = None  # the file holding the io_config / dummy_inputs_func functions
    script_dir: Path | None = None
    dummy_inputs_func: str | None = None  # a function of model_script returning OnnxConversion's example inputs

    kind: ModelKind = field(default="hf", init=False)

    def export_functions(self) -> dict[str, Any] | None:
        """The script and the functions of it that OnnxConversion calls (None when the model names none)."""
        if self.model_script is None:
            return None
        return {"model_script": str(self.model_script), "script_dir": _opt(self.script_dir),
                "dummy_inputs_func": self.dummy_inputs_func,
                "io_config": self.io_config if isinstance(self.io_config, str) else None}

    def with_export_functions(self, source: "HfModel") -> "HfModel":
        """This model with `source`'s script functions, when it names none itself: a pass that makes a new Hugging
        Face model from `source` keeps the functions its export calls, as Olive 0.6's passes kept model_script."""
        if source.model_script is None or self.model_script is not None or self.io_config is not None:
            return self
        return replace(self, model_script=source.model_script, script_dir=source.script_dir,
                       dummy_inputs_func=source.dummy_inputs_func,
                       io_config=source.io_config if isinstance(source.io_config, str) else None)

    def folders(self) -> dict[str, Path]:
        """The folders that make up this model, by role; export copies each into its own subfolder."""
        return {"model": self.path} | ({"adapter": self.adapter_path} if self.adapter_path else {})

    def with_folders(self, folders: dict[str, Path]) -> "HfModel":
        return replace(self, path=folders["model"], adapter_path=folders.get("adapter"))

    def to_config(self) -> dict[str, Any]:
        # io_config and model_class only when set, so that the keys of models without them stay as they were
        # the script's paths are kept in a mapping of their own, not in PATH_FIELDS: the script lies outside the
        # model's folders (it counts in the keys by content, see engine.keys)
        optional = {key: value for key, value in (("io_config", self.io_config), ("model_class", self.model_class),
                                                  ("export_functions", self.export_functions())) if value is not None}
        return {"type": "HfModel", "model_path": str(self.path), "adapter_path": _opt(self.adapter_path),
                "task": self.task, "load_kwargs": self.load_kwargs, **optional}


@dataclass(frozen=True)
class OnnxModel:
    """A folder with an ONNX model; a GenAI model also holds genai_config.json and tokenizer files."""

    path: Path
    onnx_file_name: str = "model.onnx"
    adapters: dict[str, str] = field(default_factory=dict)  # adapter name -> file name inside `path`

    kind: ModelKind = field(default="onnx", init=False)

    def folders(self) -> dict[str, Path]:
        return {"model": self.path}

    def exported_adapter(self) -> tuple[str, Path] | None:
        """(name, file) of the adapter the model was exported with (the first recorded): evaluating the model
        means evaluating it with this adapter active, as an HfModel is evaluated with its adapter applied."""
        name = next(iter(self.adapters), None)
        return None if name is None else (name, self.path / self.adapters[name])

    def with_folders(self, folders: dict[str, Path]) -> "OnnxModel":
        return replace(self, path=folders["model"])

    def to_config(self) -> dict[str, Any]:
        return {"type": "OnnxModel", "model_path": str(self.path), "onnx_file_name": self.onnx_file_name,
                "adapters": self.adapters}


@dataclass(frozen=True)
class PyTorchModel:
    """A torch.nn.Module that the user's code makes (`model_loader` in `model_script`, given `model_id`) or that a
    .pt file holds whole (torch.save of the module)."""

    path: Path | None = None  # a local .pt file or folder; its contents are part of the model's key
    model_id: str | None = None  # a model_path that is not local (a hub id), passed to model_loader as it is
    model_script: Path | None = None
    script_dir: Path | None = None
    model_loader: str | None = None
    io_config: dict[str, Any] | str | None = None  # a dict, or the name of a function in model_script
    dummy_inputs_func: str | None = None  # a function in model_script returning the example inputs for export

    kind: ModelKind = field(default="pytorch", init=False)

    def folders(self) -> dict[str, Path]:
        return {"model": self.path} if self.path is not None else {}

    def with_folders(self, folders: dict[str, Path]) -> "PyTorchModel":
        return replace(self, path=folders.get("model"))

    def to_config(self) -> dict[str, Any]:
        return {"type": "PyTorchModel", "model_path": _opt(self.path), "model_id": self.model_id,
                "model_script": _opt(self.model_script), "script_dir": _opt(self.script_dir),
                "model_loader": self.model_loader, "io_config": self.io_config,
                "dummy_inputs_func": self.dummy_inputs_func}


@dataclass(frozen=True)
class CompositeModel:
    """Several ONNX models that run one after another (Olive's CompositeModel): each part a graph file in the one
    folder `path`, which also holds their weights and side files (genai_config.json, tokenizer). Parts may share a
    weight file (StaticLLM's context and iterator graphs of one split do)."""

    path: Path
    components: dict[str, str]  # part name -> graph file name inside `path`, in the order the parts run
    # Olive's llm_pipeline attribute (StaticLLM): {"embeddings": name, "context": [names], "iterator": [names],
    # "lm_head": name}; None for plain parts (SplitModel)
    llm_pipeline: dict[str, Any] | None = None

    kind: ModelKind = field(default="composite", init=False)

    def folders(self) -> dict[str, Path]:
        return {"model": self.path}

    def with_folders(self, folders: dict[str, Path]) -> "CompositeModel":
        return replace(self, path=folders["model"])

    def component(self, name: str) -> OnnxModel:
        """One part as an ONNX model (its folder is the composite's, so it sees the side files too)."""
        return OnnxModel(path=self.path, onnx_file_name=self.components[name])

    def to_config(self) -> dict[str, Any]:
        return {"type": "CompositeModel", "model_path": str(self.path), "model_components": self.components,
                "llm_pipeline": self.llm_pipeline}


ModelHandle = HfModel | OnnxModel | PyTorchModel | CompositeModel


def single_model(model: ModelHandle, user: str) -> HfModel | OnnxModel | PyTorchModel:
    """`model`, refused in one line when it is a composite, which `user` (evaluation, generation) cannot run."""
    if isinstance(model, CompositeModel):
        raise OlivepressError(f"{user} takes one model, but this is a composite model (the parts that SplitModel or "
                              "StaticLLM make): join them with ComposeOnnxModels first")
    return model


def handle_from_config(config: dict[str, Any]) -> ModelHandle:
    """The inverse of `to_config`."""
    if config["type"] == "HfModel":
        functions = config.get("export_functions") or {}
        return HfModel(path=Path(config["model_path"]), adapter_path=_opt_path(config.get("adapter_path")),
                       task=config.get("task", "text-generation"), load_kwargs=config.get("load_kwargs", {}),
                       io_config=config.get("io_config"), model_class=config.get("model_class"),
                       model_script=_opt_path(functions.get("model_script")),
                       script_dir=_opt_path(functions.get("script_dir")),
                       dummy_inputs_func=functions.get("dummy_inputs_func"))
    if config["type"] == "PyTorchModel":
        return PyTorchModel(path=_opt_path(config.get("model_path")), model_id=config.get("model_id"),
                            model_script=_opt_path(config.get("model_script")),
                            script_dir=_opt_path(config.get("script_dir")), model_loader=config.get("model_loader"),
                            io_config=config.get("io_config"), dummy_inputs_func=config.get("dummy_inputs_func"))
    if config["type"] == "CompositeModel":
        return CompositeModel(path=Path(config["model_path"]), components=dict(config["model_components"]),
                              llm_pipeline=config.get("llm_pipeline"))
    return OnnxModel(path=Path(config["model_path"]), onnx_file_name=config.get("onnx_file_name", "model.onnx"),
                     adapters=config.get("adapters", {}))


def _opt(path: Path | None) -> str | None:
    return str(path) if path else None


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None
