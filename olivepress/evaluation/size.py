"""Size on disk: the bytes of every file in the model's folders (the model and, if any, its adapter)."""

from olivepress.hashing import list_files
from olivepress.models.handles import ModelHandle


def measure(model: ModelHandle) -> dict[str, float]:
    total = sum((folder / rel).stat().st_size for folder in model.folders().values() for rel in list_files(folder))
    return {"bytes": float(total), "mb": total / 1e6}
