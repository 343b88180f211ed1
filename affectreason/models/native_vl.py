"""Native multimodal mode: a Qwen2-VL / Qwen2.5-VL model that sees sampled frames as well as the cue text.

Frames go through the PIL image processor (``Qwen2VLImageProcessorPil``), because the full processor
needs torchvision, whose PyPI builds do not load beside the CPU torch these machines use. Each frame
is an image: ``<|vision_start|>`` + one ``<|image_pad|>`` per merged patch + ``<|vision_end|>``, put before
the text of the last user message; ``mm_token_type_ids`` marks those tokens, as transformers 5 needs.
The voice and the words reach the model as text (the textualized cues): Qwen2.5-VL has no audio input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.models.causal_lm import ModelMissing

VL_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")


def is_native_vl(model: str) -> bool:
    """Whether a model folder holds a vision-language model this mode can run."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return False
    return json.loads(config.read_text(encoding="utf-8")).get("model_type") in VL_MODEL_TYPES


@dataclass
class NativeVL:
    """Model + tokenizer + image processor of a local Qwen-VL folder (optionally with a LoRA adapter)."""

    model: str
    adapter: str | None = None
    max_new_tokens: int = 384
    name: str = field(init=False)

    def __post_init__(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoTokenizer
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        self.name = Path(self.model).name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model, local_files_only=True)
            self.lm = AutoModelForImageTextToText.from_pretrained(self.model, local_files_only=True)
            self.images = Qwen2VLImageProcessorPil.from_pretrained(self.model, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelMissing(f"cannot load the vision-language model {self.model!r} "
                               f"({str(exc).splitlines()[0][:200]}); nothing is downloaded") from None
        if self.adapter:
            from peft import PeftModel

            self.lm = PeftModel.from_pretrained(self.lm, self.adapter)
            self.name += f"+{Path(self.adapter).name}"
        config = self.lm.config
        self.image_token_id = config.image_token_id
        self.vision_tokens = [self.tokenizer.convert_ids_to_tokens(i) for i in
                              (config.vision_start_token_id, config.image_token_id, config.vision_end_token_id)]
        self.merge = self.images.merge_size ** 2
        self.lm.eval()

    def inputs(self, messages: list[dict[str, str]], frames: list[np.ndarray]) -> dict:
        """Model inputs for ``messages`` with ``frames`` (RGB arrays) shown before the last user text."""
        from PIL import Image

        extra: dict = {}
        messages = [dict(m) for m in messages]
        if frames:
            pixels = self.images(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
            start, pad, end = self.vision_tokens
            vision = "".join(start + pad * (int(grid.prod()) // self.merge) + end for grid in pixels["image_grid_thw"])
            messages[-1]["content"] = vision + messages[-1]["content"]
            extra = {"pixel_values": pixels["pixel_values"], "image_grid_thw": pixels["image_grid_thw"]}
        inputs = dict(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                         return_tensors="pt"))
        inputs["mm_token_type_ids"] = (inputs["input_ids"] == self.image_token_id).int()
        return {**inputs, **extra}

    def generate(self, messages: list[dict[str, str]], frames: list[np.ndarray],
                 max_new_tokens: int | None = None) -> str:
        """The reply to ``messages`` with ``frames`` (greedy decoding)."""
        import torch

        inputs = self.inputs(messages, frames)
        with torch.inference_mode():
            output = self.lm.generate(**inputs, max_new_tokens=max_new_tokens or self.max_new_tokens,
                                      do_sample=False)
        return self.tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
