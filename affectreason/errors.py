"""One base class for the problems a user can fix (a bad file, a missing model, options that do not fit).

The CLI prints an ``AffectReasonError`` as one line and exits with status 2; any other exception is a bug in
affectreason and is printed as such, with a short traceback. Subclasses keep the built-in base they had
(``ValueError``, ``FileNotFoundError`` ...) so callers that catch those keep working.
"""

from __future__ import annotations


class AffectReasonError(Exception):
    """A problem the user can fix; the message says what and how."""


class UsageError(AffectReasonError, ValueError):
    """Options or arguments that do not fit together (e.g. ``--backend vllm`` without ``--model``)."""


class DataError(AffectReasonError, ValueError):
    """Data (instruction records, training chats, tables) cannot be used; the message names the file and line."""


class RecipeError(DataError):
    """A YAML recipe (training, data, evaluation) cannot be used; the message names the file and the key."""
