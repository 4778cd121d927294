"""A third-party pass, as a plugin package would ship it: copies an HF model folder and adds a note."""

import os
import shutil
import time

from pydantic import Field

from olivepress.models.handles import HfModel
from olivepress.passes.base import Pass, PassConfig, PassContext


class AddNoteConfig(PassConfig):
    note: str = Field("hello", description="The text written to NOTE.txt.")


class AddNote(Pass[HfModel, AddNoteConfig]):
    name = "AddNote"
    description = "Copy a Hugging Face model folder and write NOTE.txt into it."
    version = "1"
    accepts = ("hf",)
    produces = "hf"
    Config = AddNoteConfig

    def run(self, model: HfModel, config: AddNoteConfig, context: PassContext) -> HfModel:
        shutil.copytree(model.path, context.output_dir, dirs_exist_ok=True)
        # Lets a test kill the run while the pass is mid-way; not part of the config, so not of the key.
        time.sleep(float(os.environ.get("OLIVEPRESS_DEMO_SLEEP", "0")))
        if config.note == "fail":
            raise ValueError("asked to fail")
        (context.output_dir / "NOTE.txt").write_text(config.note)
        return HfModel(path=context.output_dir, task=model.task, load_kwargs=model.load_kwargs)
