"""``trainer.plugins``: checkpoints written whole or not at all (``configs/trainer/default.yaml``).

Lightning's own save writes its temporary file in ``TMPDIR`` and moves it onto the checkpoint's
path: across file systems that move is a copy, which a full disk leaves half done under the real
name. Written beside the checkpoint and renamed instead, a save that fails leaves the previous
checkpoint as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from optlab.results import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, each checkpoint replacing the previous one only once it is complete."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote storage: Lightning's own way
            return
        write_atomically(Path(path), lambda stream: torch.save(checkpoint, stream))
