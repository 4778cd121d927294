"""Hugging Face hub repositories, downloaded into the Hugging Face cache with huggingface_hub.

huggingface_hub reads its settings from the environment: HF_ENDPOINT (the hub), HF_TOKEN or `hf auth login`
(the token), HF_HOME / HF_HUB_CACHE (the cache) and HF_HUB_OFFLINE=1 (the cache only, no network). A snapshot
lies in `<cache>/<type>s--<org>--<name>/snapshots/<commit>/`, so its folder names the commit it holds.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from olivepress.errors import OlivepressError

RepoType = Literal["model", "dataset"]
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class HubSnapshot:
    """One commit of a hub repository, in the local Hugging Face cache."""

    repo_id: str
    revision: str
    commit: str
    folder: Path

    def record(self) -> dict[str, str]:
        """What footprint.json says of where the model came from."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


class _DownloadBar(tqdm):
    """huggingface_hub's bars through tqdm directly: olivepress quiets the libraries' own bars (log.py), but a
    download is the long step here, so it shows (on a terminal, like olivepress's other bars)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.pop("name", None)
        kwargs.setdefault("disable", None)
        super().__init__(*args, **kwargs)


def is_hub_id(value: str) -> bool:
    """`org/name` that is not a local path: a hub repository id."""
    return bool(_REPO_ID.fullmatch(value)) and not Path(value).exists()


def snapshot_commit(folder: Path) -> str | None:
    """The commit of a folder that is (or lies inside) a snapshot in the Hugging Face cache; None for any other."""
    for place in (folder, *folder.parents):
        if place.parent.name == "snapshots" and _COMMIT.fullmatch(place.name) and "--" in place.parent.parent.name:
            return place.name
    return None


def hub_snapshot(repo_id: str, revision: str | None, where: str, repo_type: RepoType = "model",
                 cached_only: bool = False) -> HubSnapshot:
    """The repository at `revision` (default: main), downloaded unless cached; `where` names the document key.

    With `cached_only` (or HF_HUB_OFFLINE=1) only the cache is read. Every failure is one line that names the
    repository and what to do."""
    from huggingface_hub import constants, snapshot_download

    wanted = revision or constants.DEFAULT_REVISION
    try:
        folder = Path(snapshot_download(repo_id, repo_type=repo_type, revision=wanted, local_files_only=cached_only,
                                        tqdm_class=_DownloadBar))
    except Exception as error:  # huggingface_hub's and its HTTP client's errors: each mapped to one line
        raise OlivepressError(f"{where}: {_explain(error, repo_id, wanted, repo_type)}") from None
    return HubSnapshot(repo_id, wanted, snapshot_commit(folder) or folder.name, folder)


def snapshot_record(repo_id: str, revision: str | None, folder: Path) -> dict[str, str] | None:
    """footprint.json's record of a model resolved from the hub into `folder` (a snapshot, or a folder inside one):
    the repository, the revision asked for and the commit the folder holds; None when `folder` is no snapshot."""
    from huggingface_hub import constants

    commit = snapshot_commit(folder)
    return HubSnapshot(repo_id, revision or constants.DEFAULT_REVISION, commit, folder).record() if commit else None


def cached_snapshot(repo_id: str, revision: str | None, repo_type: RepoType = "model") -> HubSnapshot | None:
    """The repository at `revision` if the cache has it; None otherwise. Never touches the network."""
    try:
        return hub_snapshot(repo_id, revision, "", repo_type, cached_only=True)
    except OlivepressError:
        return None


def _explain(error: Exception, repo_id: str, revision: str, repo_type: RepoType) -> str:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"{repo_type} '{repo_id}'"
    get = f"`hf download {repo_id}{' --repo-type dataset' if repo_type == 'dataset' else ''} --revision {revision}`"
    if isinstance(error, GatedRepoError):
        return (f"{what} is gated on {constants.ENDPOINT}: accept its terms on its hub page, then log in with "
                "`hf auth login` or set HF_TOKEN")
    if isinstance(error, RepositoryNotFoundError):
        return (f"{what} not found on {constants.ENDPOINT} (or it is private: log in with `hf auth login` or set "
                "HF_TOKEN); check the name")
    if isinstance(error, RevisionNotFoundError):
        return f"{what} has no revision '{revision}' on {constants.ENDPOINT}: name a branch, tag or commit it has"
    cache = f"the local Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        return (f"{what} (revision {revision}) is not a local folder and not in {cache}, and HF_HUB_OFFLINE is set: "
                f"run {get} where the hub is reachable, or unset HF_HUB_OFFLINE")
    if isinstance(error, LocalEntryNotFoundError):
        return (f"{what} (revision {revision}) could not be downloaded from {constants.ENDPOINT} (no network?) and is "
                f"not in {cache}: check the connection (or HF_ENDPOINT), or run {get} where the hub is reachable")
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"downloading {what} (revision {revision}) from {constants.ENDPOINT} failed: {first_line}"
