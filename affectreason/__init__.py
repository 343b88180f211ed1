"""affectreason: explainable multimodal emotion reasoning with (multimodal) LLMs."""

from importlib.metadata import PackageNotFoundError, version


def installed_version(package: str, default: str | None = None) -> str | None:
    """The installed version of a distribution (as provenance and manifests record it), else ``default``."""
    try:
        return version(package)
    except PackageNotFoundError:
        return default


__version__ = installed_version("affectreason", "0.0.0+source")  # a source tree that was never installed: the default
