"""affectreason: explainable multimodal emotion reasoning with (multimodal) LLMs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("affectreason")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
