"""Frozen media encoders from transformers for the feature path: SigLIP / CLIP image encoders over
frames, the Whisper encoder or HuBERT over the audio. Each turns a clip's media into a sequence of
feature vectors (one per frame; one per ``window`` seconds of audio).

An encoder is a local folder (a full SigLIP/CLIP/Whisper checkpoint or only its vision/encoder part);
nothing is downloaded. Image preprocessing follows the folder's ``preprocessor_config.json`` (mean,
std) when there is one, else the model family's constants, so no torchvision-backed processor is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.media import media_audio, media_frames
from affectreason.models.causal_lm import ModelMissing

VISION_TYPES = {"siglip", "siglip_vision_model", "siglip2", "siglip2_vision_model", "clip", "clip_vision_model"}
AUDIO_TYPES = {"whisper", "hubert"}
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def encoder_modality(path: str | Path) -> str:
    """"vision" or "audio", from the folder's config.json; an error names the supported families."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise ModelMissing(f"encoder {path}: no config.json; give a local SigLIP, CLIP, Whisper or HuBERT folder")
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if model_type in VISION_TYPES:
        return "vision"
    if model_type in AUDIO_TYPES:
        return "audio"
    raise ModelMissing(f"encoder {path}: model_type {model_type!r} is not one of "
                       f"{sorted(VISION_TYPES | AUDIO_TYPES)}")


@dataclass
class FrozenEncoder:
    """A frozen vision or audio encoder loaded from a local folder."""

    path: str
    window: float = 0.5
    modality: str = field(init=False)
    dim: int = field(init=False)

    def __post_init__(self) -> None:
        from transformers import AutoModel

        from affectreason.models.hub import model_folder

        self.folder = model_folder(self.path, "encoder")
        self.modality = encoder_modality(self.folder)
        try:
            model = AutoModel.from_pretrained(self.folder)
        except (OSError, ValueError) as exc:
            raise ModelMissing(f"cannot load encoder {self.path} ({str(exc).splitlines()[0][:200]})") from None
        self.kind = model.config.model_type
        if hasattr(model, "vision_model") and self.modality == "vision":
            model = model.vision_model  # a full SigLIP/CLIP checkpoint: keep the image tower
        elif hasattr(model, "get_encoder") and self.kind == "whisper":
            model = model.get_encoder()
        self.model = model.eval().requires_grad_(False)
        self.config = model.config
        self.dim = self.config.hidden_size if self.kind != "whisper" else self.config.d_model
        preprocessor = self.folder / "preprocessor_config.json"
        self.preprocess = json.loads(preprocessor.read_text()) if preprocessor.is_file() else {}

    def encode(self, frames: list[np.ndarray] | None = None, audio: np.ndarray | None = None,
               rate: int = 16_000) -> np.ndarray:
        """Features (steps x dim): one per frame for a vision encoder, per ``window`` s of audio for an audio one."""
        if self.modality == "vision":
            return self._frames(frames or [])
        return self._audio(audio if audio is not None else np.zeros(0, np.float32), rate)

    def _frames(self, frames: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        if not frames:
            return np.zeros((0, self.dim), np.float32)
        size = self.config.image_size
        family_mean = (0.5, 0.5, 0.5) if self.kind.startswith("siglip") else CLIP_MEAN
        family_std = (0.5, 0.5, 0.5) if self.kind.startswith("siglip") else CLIP_STD
        mean = np.array(self.preprocess.get("image_mean", family_mean), np.float32)
        std = np.array(self.preprocess.get("image_std", family_std), np.float32)
        pixels = np.stack([np.asarray(Image.fromarray(f).convert("RGB").resize((size, size), Image.BICUBIC),
                                      np.float32) / 255.0 for f in frames])
        pixels = ((pixels - mean) / std).transpose(0, 3, 1, 2)
        with torch.inference_mode():
            out = self.model(pixel_values=torch.from_numpy(np.ascontiguousarray(pixels)))
        pooled = getattr(out, "pooler_output", None)
        features = pooled if pooled is not None else out.last_hidden_state.mean(dim=1)
        return features.float().numpy()

    def _audio(self, samples: np.ndarray, rate: int) -> np.ndarray:
        import torch

        if len(samples) == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            if self.kind == "whisper":
                from transformers import WhisperFeatureExtractor

                # the encoder takes a fixed window (30 s for real checkpoints: max_source_positions x 20 ms);
                # longer audio is encoded window by window, and only frames that cover real audio are kept
                chunk = max(1, round(self.config.max_source_positions * 0.02))
                extractor = WhisperFeatureExtractor(feature_size=self.config.num_mel_bins, chunk_length=chunk)
                span = int(chunk * rate)
                parts = []
                for start in range(0, len(samples), span):
                    piece = samples[start: start + span]
                    mel = extractor(piece, sampling_rate=rate, return_tensors="pt")["input_features"]
                    hidden = self.model(mel).last_hidden_state[0]
                    parts.append(hidden[: min(len(hidden), math.ceil(len(piece) / rate / 0.02))])
                hidden = torch.cat(parts)
                step = 0.02
            else:
                wave = (samples - samples.mean()) / (samples.std() + 1e-7)
                hidden = self.model(torch.from_numpy(wave.astype(np.float32))[None]).last_hidden_state[0]
                step = len(samples) / rate / max(len(hidden), 1)
        per_window = max(1, round(self.window / step))
        chunks = torch.split(hidden, per_window)
        return torch.stack([c.mean(dim=0) for c in chunks]).float().numpy()


def clip_features(encoders: dict, media: dict[str, list[str]], fps: float, max_frames: int,
                  start: float | None = None, end: float | None = None) -> dict[str, np.ndarray]:
    """Features of one record's media for each encoder's modality (absent media -> no entry)."""
    out = {}
    if "vision" in encoders and (media["videos"] or media["images"]):
        frames, _ = media_frames(media, fps, max_frames, start, end)
        if frames:
            out["vision"] = encoders["vision"].encode(frames=frames)
    track = media_audio(media, start, end) if "audio" in encoders else None
    if track is not None:
        out["audio"] = encoders["audio"].encode(audio=track.samples, rate=track.rate)
    return out
