"""Reasoners that run models: local (``hf``: text, native multimodal, feature path), server (one
OpenAI-compatible client with the bounded schema) and vllm (an in-process engine); ``load_reasoner`` picks one."""
