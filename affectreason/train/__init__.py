"""Fine-tuning language models on instruction data (LoRA / QLoRA)."""
