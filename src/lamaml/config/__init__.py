"""Typed run configuration and the paper presets (data files under ``presets/``)."""
from .schema import RunConfig, parse_value, preset, resolve_config

__all__ = ["RunConfig", "parse_value", "preset", "resolve_config"]
