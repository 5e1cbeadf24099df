"""Runs grouped by setting: the one grouping that ``lamaml report``, ``lamaml plot`` and a sweep's
progress lines share.

A group is every run with the same benchmark, method and other settings, the seed apart: the
seeds of one setting. Each group also knows which of its settings differ from another group of the
same benchmark and method; those, and only those, name it (the report's settings column, a figure's
legend, a sweep's ``[i/n]`` line), so a grid sweep reads as its grid.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, TypeVar

from .store import config_hash, filled_config

Item = TypeVar("Item")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"params": {"alpha_init": 0.1}}`` -> ``{"params.alpha_init": 0.1}``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def show_value(value: Any) -> str:
    """A setting as a config file writes it: null, true/false, numbers and text as they are."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _order(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order (0.03 before 0.1 before 10), before anything else in text order."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, value
    return 1, str(value)


@dataclass
class Group(Generic[Item]):
    benchmark: str
    method: str
    config: dict[str, Any]                   # flattened (``params.alpha_init``), without the seed
    varying: tuple[str, ...] = ()            # flattened keys that differ from another group of this benchmark+method
    members: list[Item] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        """The settings that tell this group apart, by their short name (``alpha_init``, ``glances``)."""
        return {key.removeprefix("params."): self.config.get(key) for key in self.varying}

    @property
    def settings_text(self) -> str:
        return ", ".join(f"{key}={show_value(value)}" for key, value in self.settings.items())

    @property
    def label(self) -> str:
        """``la-maml alpha_init=0.3``: the method, then the settings that tell this group apart."""
        return " ".join([self.method, *(f"{key}={show_value(value)}" for key, value in self.settings.items())])


def latest_per_run(items: Iterable[Item], config_of: Callable[[Item], dict[str, Any] | None]) -> list[Item]:
    """``items`` (oldest first) with one per run identity (``config_hash``, which holds the seed): the last,
    so a seed run again, or restored from exported rows and run again, counts once, as its latest result.
    Items without a config are kept as they are."""
    latest: dict[Any, Item] = {}
    for index, item in enumerate(items):
        config = config_of(item)
        latest.pop(key := config_hash(config) if config else index, None)
        latest[key] = item
    return list(latest.values())


def group_by_setting(items: Iterable[Item], config_of: Callable[[Item], dict[str, Any]]) -> list[Group[Item]]:
    """``items`` (store rows, metrics dicts, configs) grouped by benchmark, method and every setting but the
    seed, read from ``config_of(item)`` with the settings it does not name at their defaults (so a run
    written before a setting existed joins the runs that name it); sorted by benchmark, method, then the
    varying settings' values."""
    groups: dict[str, Group[Item]] = {}
    for item in items:
        config = flatten(filled_config(config_of(item)))
        config.pop("seed", None)
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in groups:
            groups[key] = Group(config["benchmark"], config["method"], config)
        groups[key].members.append(item)
    by_pair: dict[tuple[str, str], list[Group[Item]]] = {}
    for group in groups.values():
        by_pair.setdefault((group.benchmark, group.method), []).append(group)
    for siblings in by_pair.values():
        keys = sorted({k for g in siblings for k in g.config})
        varying = tuple(k for k in keys if len({json.dumps(g.config.get(k), sort_keys=True, default=str)
                                                 for g in siblings}) > 1)
        for group in siblings:
            group.varying = varying
    return sorted(groups.values(), key=lambda g: (g.benchmark, g.method,
                                                  tuple(_order(g.config.get(k)) for k in g.varying)))
