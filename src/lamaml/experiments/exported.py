"""Exported runs back into a store: ``lamaml runs --store S --import table-runs.csv``.

The reproduced tables commit one CSV row per run beside themselves (reproduce/tables.py), so their
numbers can be audited from the repository. That row also says which run it was: the benchmark,
method and seed columns, ``settings`` (every config field that differs from its default) and
``config_hash``. Importing rebuilds the full config from them, checks that it hashes to the
row's ``config_hash`` (a row that does not is refused, never guessed), and records the run as done
with the metrics the row holds, so a sweep or reproduction on that store skips it. A machine that
lost its store (a new checkout, a wiped disk) continues from the committed rows instead of rerunning
hours of training. What is lost is what the CSV never held: accuracy matrices and curves, the
run's folder and anything more precise than the exported digits (4 decimals). Imported rows carry
``imported_from`` in their metrics and host ``imported``, so a table can say which of its runs were
measured here and which were restored.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import UserError
from .store import NOT_IDENTITY, Store, config_hash

# Columns that name the run rather than measure it.
_IDENTITY = ("benchmark", "method", "seed", "setting", "config_hash", "settings", "code_commit")
# Columns of how a resumed run was trained (tables.run_row), read back as the metrics.json keys they came from.
_PROVENANCE = ("code_used", "train_threads_used", "resumed")
# One ``key=value`` of the settings column; a value may hold spaces (a JSON list), a key never does.
_SETTING = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.]*)=")


def parse_settings(text: str) -> dict[str, Any]:
    """The settings column (tables.settings_text) as a dict, ``params.key`` nested under ``params``."""
    marks = list(_SETTING.finditer(text))
    flat: dict[str, Any] = {}
    for mark, after in zip(marks, marks[1:] + [None]):
        raw = text[mark.end():after.start() if after else len(text)].strip()
        try:
            flat[mark.group(1)] = json.loads(raw)
        except json.JSONDecodeError:
            flat[mark.group(1)] = raw            # strings are written bare
    config: dict[str, Any] = {"params": {}}
    for key, value in flat.items():
        if key.startswith("params."):
            config["params"][key[len("params."):]] = value
        else:
            config[key] = value
    return config


def _number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def row_run(row: dict[str, str], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One exported row as (full config, metrics); ``where`` names the row in errors."""
    missing = [c for c in ("benchmark", "method", "seed", "config_hash", "settings") if c not in row]
    if missing:
        raise UserError(f"{where}: not a runs file of `lamaml reproduce` (no column {', '.join(missing)})")
    settings = parse_settings(row["settings"] or "")
    # The row's hash is of the config as canonical when it was exported: the settings, the identity
    # columns and the seed unless it was the default 0. Checking it proves the settings were read right;
    # the config rebuilt today may hash otherwise where a default changed since (the store matches runs
    # by today's hash of their stored config).
    exported = {"benchmark": row["benchmark"], "method": row["method"],
                **{k: v for k, v in settings.items() if k not in NOT_IDENTITY}}
    if row["seed"] not in ("", "0"):
        exported["seed"] = int(row["seed"])
    digest = hashlib.sha256(json.dumps(exported, sort_keys=True).encode()).hexdigest()[:16]
    if digest != row["config_hash"]:
        raise UserError(f"{where}: its settings hash to {digest}, not the row's config_hash {row['config_hash']}; "
                        f"refusing to guess which run it was")
    try:
        config = RunConfig(benchmark=row["benchmark"], method=row["method"], seed=int(row["seed"]),
                           **settings).model_dump()
    except (ValueError, TypeError) as error:
        raise UserError(f"{where}: its settings do not make a valid config today "
                        f"({str(error).splitlines()[0]})") from None
    metrics: dict[str, Any] = {k: _number(v) for k, v in row.items()
                               if k not in _IDENTITY + _PROVENANCE + ("test_ra", "test_bti") and v not in ("", None)}
    if row.get("test_ra") or row.get("test_bti"):
        metrics["test"] = {"ra": _number(row.get("test_ra", "")), "bti": _number(row.get("test_bti", ""))}
    if row.get("code_used"):
        metrics["code_used"] = row["code_used"].split("; ")
    if row.get("train_threads_used"):
        metrics["train_threads_used"] = [int(n) for n in row["train_threads_used"].split()]
    if "train_threads" not in settings:    # one thread goes unsaid (and was the default before "auto")
        config["train_threads"] = 1
    if row.get("resumed"):
        metrics["resumed"] = row["resumed"] == "yes"
    # A run's metrics.json holds its resolved config; the tables read it from there.
    metrics.update(config=config, benchmark=config["benchmark"], method=config["method"], seed=config["seed"],
                   code_commit=row.get("code_commit") or None, imported_from=where.split(":")[0])
    return config, metrics


def read_runs(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every row of the runs file ``path`` as (config, metrics), each checked (row_run)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise UserError(f"--import {path}: {error.strerror or error}") from None
    return [row_run(row, f"{path.name}:{line}") for line, row in enumerate(rows, start=2)]


def restorable(store_path: Path, path: Path) -> int:
    """How many runs of the runs file ``path`` the store at ``store_path`` lacks (0 where the file is
    absent or not a valid runs file: this only feeds a hint)."""
    if not path.is_file():
        return 0
    try:
        runs = read_runs(path)
    except UserError:
        return 0
    done = Store(store_path).done_hashes() if store_path.exists() else set()
    return sum(config_hash(config) not in done for config, _ in runs)


def import_runs(store: Store, path: Path) -> tuple[int, int]:
    """Record every row of the runs file ``path`` as a finished run of ``store`` unless the store has it
    done already; return (imported, already there). Every row is checked before any is written."""
    runs = read_runs(path)
    done = store.done_hashes()
    fresh = [(config, metrics) for config, metrics in runs if config_hash(config) not in done]
    for config, metrics in fresh:
        store.add_done(config, metrics)
    return len(fresh), len(runs) - len(fresh)
