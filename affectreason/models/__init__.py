"""Loading language models (transformers) and adapters (peft)."""
