"""Moved: ``affectreason.endpoint`` (kept until every caller imports it from there)."""

from affectreason.endpoint import *  # noqa: F403
from affectreason.endpoint import ChatClient, EndpointError, ResponseCache, UnparseableAnswer  # noqa: F401
