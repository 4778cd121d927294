"""Model handles: what a pass takes and makes. A handle names files; it never holds weights."""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["hf", "onnx"]

# The keys of `to_config()` that hold file-system paths; the cache and the output folder rewrite them.
PATH_FIELDS = ("model_path", "adapter_path")


@dataclass(frozen=True)
class HfModel:
    """A Hugging Face folder, optionally with a PEFT adapter on top."""

    path: Path
    adapter_path: Path | None = None
    task: str = "text-generation"
    load_kwargs: dict[str, Any] = field(default_factory=dict)

    kind: ModelKind = field(default="hf", init=False)

    def folders(self) -> dict[str, Path]:
        """The folders that make up this model, by role; export copies each into its own subfolder."""
        return {"model": self.path} | ({"adapter": self.adapter_path} if self.adapter_path else {})

    def with_folders(self, folders: dict[str, Path]) -> "HfModel":
        return replace(self, path=folders["model"], adapter_path=folders.get("adapter"))

    def to_config(self) -> dict[str, Any]:
        return {"type": "HfModel", "model_path": str(self.path), "adapter_path": _opt(self.adapter_path),
                "task": self.task, "load_kwargs": self.load_kwargs}


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


ModelHandle = HfModel | OnnxModel


def handle_from_config(config: dict[str, Any]) -> ModelHandle:
    """The inverse of `to_config`."""
    if config["type"] == "HfModel":
        return HfModel(path=Path(config["model_path"]), adapter_path=_opt_path(config.get("adapter_path")),
                       task=config.get("task", "text-generation"), load_kwargs=config.get("load_kwargs", {}))
    return OnnxModel(path=Path(config["model_path"]), onnx_file_name=config.get("onnx_file_name", "model.onnx"),
                     adapters=config.get("adapters", {}))


def _opt(path: Path | None) -> str | None:
    return str(path) if path else None


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None
