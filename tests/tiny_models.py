"""Tiny random-init models of real architectures, built offline for tests (no downloads).

    python tests/tiny_models.py OUT_DIR     # writes OUT_DIR/qwen2 (a chat causal LM + tokenizer)

The tokenizer is a byte-level BPE trained here on a few hundred sentences, with a ChatML chat
template, saved as a ``PreTrainedTokenizerFast`` so every loader reads it back identically.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = [
    "The face shows AU12 lip corner puller and AU06 cheek raiser: a smile.",
    "The voice is loud and fast with a high, rising pitch.",
    "She says she is happy to see you again today.",
    "Key observations, interpretation, conclusion, labels: happy, sad, angry, surprised, neutral.",
    '{"observations": [{"modality": "face", "text": "smile"}], "labels": ["happy"]}',
] * 40


VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def build_tokenizer(folder: Path, extra_specials: list[str] | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *(extra_specials or [])]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None)
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def build_qwen2(folder: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A random-init Qwen2ForCausalLM with the tiny tokenizer, saved to ``folder``.

    Weights are drawn with std 0.1, not transformers' 0.02: with tied embeddings that small and the final
    RMSNorm frozen, a LoRA adapter cannot make any logit exceed ~2.6 (|h| = sqrt(hidden) times |e| =
    0.02 sqrt(hidden)), so the loss floors near 3.5 nats whatever it learns.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=0.1)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    return folder


def build_qwen2_5_vl(folder: Path, hidden: int = 64, seed: int = 0) -> Path:
    """A random-init Qwen2.5-VL (1 vision block, 2 text layers) + tokenizer + PIL image processor."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, VISION_TOKENS)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    torch.manual_seed(seed)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                eos_token_id=tokenizer.eos_token_id, bos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0], window_size=112)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                              video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                              vision_end_token_id=ids["<|vision_end|>"], eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(folder)
    return folder


OMNI_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|IMAGE|>", "<|VIDEO|>", "<|AUDIO|>", "<|audio_bos|>",
               "<|audio_eos|>"]


def build_qwen2_5_omni_thinker(folder: Path, hidden: int = 64, seed: int = 0) -> Path:
    """A random-init Qwen2.5-Omni thinker (1-layer audio and vision encoders, 2 text layers), its tokenizer,
    PIL image processor (folder root) and Whisper feature extractor (``audio/``)."""
    import torch
    from transformers import WhisperFeatureExtractor
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniThinkerConfig
    from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniThinkerForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, OMNI_TOKENS)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in OMNI_TOKENS}
    torch.manual_seed(seed)
    config = Qwen2_5OmniThinkerConfig(
        audio_config=dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                          d_model=32, output_dim=hidden, n_window=100, max_source_positions=1500),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, fullatt_block_indexes=[0],
                           window_size=112),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6}),
        audio_token_index=ids["<|AUDIO|>"], image_token_index=ids["<|IMAGE|>"], video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"], audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=128).save_pretrained(folder / "audio")
    return folder


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")
    print(build_qwen2(out / "qwen2"))
    print(build_qwen2_5_vl(out / "qwen2_5_vl"))
    print(build_qwen2_5_omni_thinker(out / "qwen2_5_omni_thinker"))


def build_siglip_vision(folder: Path, seed: int = 0) -> Path:
    """A random-init SigLIP image encoder (32x32 input, 8x8 patches, 1 layer, width 32)."""
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    config = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=32, patch_size=8)
    SiglipVisionModel(config).save_pretrained(folder)
    return folder


def build_whisper_encoder(folder: Path, seed: int = 0) -> Path:
    """A random-init Whisper (1 encoder layer, width 32, 80 mel bins, 2 s window); the feature path uses its encoder."""
    import torch
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(seed)
    config = WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                           vocab_size=51865, max_target_positions=32, max_source_positions=100)
    WhisperModel(config).save_pretrained(folder)
    return folder


def build_lora_adapter(model: Path, folder: Path, seed: int = 0) -> Path:
    """A LoRA adapter (r=4 on q/v) for ``model`` with random non-zero weights, so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model),
                                LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft_model.save_pretrained(folder)
    return folder
