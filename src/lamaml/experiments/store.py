"""The results store: every run as one row of an SQLite file, safe for concurrent writers.

A run is recorded when it starts (``running``) and updated when it ends (``done`` with its
metrics, or ``failed`` with the error). The file uses SQLite's write-ahead log and a busy timeout,
each change is one transaction, so several processes can record runs at once without losing any.
A sweep's worker *claims* its combination (``claim``): one process at a time may hold it, and none
once it is done, so no combination runs twice whatever is killed when.
Filters from users are parsed into (column, operator, value) and always bound as parameters:
no text a user types is ever pasted into SQL.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import platform
import re
import sqlite3
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from ..errors import UserError
from ..version import __version__
from .processes import alive, process_start

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    config_hash   TEXT NOT NULL,
    benchmark     TEXT NOT NULL,
    method        TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    config        TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    error         TEXT,
    metrics       TEXT,
    ra            REAL,
    bti           REAL,
    train_time_s  REAL,
    wall_time_s   REAL,
    code_version  TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER,
    pid_start     REAL,
    started_at    TEXT NOT NULL,
    ended_at      TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash, status);
"""
COLUMNS = ("id", "config_hash", "benchmark", "method", "seed", "status", "error", "ra", "bti", "train_time_s",
           "wall_time_s", "code_version", "host", "pid", "started_at", "ended_at")
OPERATORS = ("!=", ">=", "<=", "=", ">", "<")
# The value may not start with an operator's character: `ra>>75` or `ra==75` is a typo, not a
# comparison with the text ">75".
_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(!=|>=|<=|=|>|<)\s*([^\s=<>!].*)$", re.S)
# Columns of text: a filter's value is compared as the text given (a config hash or host of digits stays text)
TEXT_COLUMNS = ("config_hash", "benchmark", "method", "status", "error", "code_version", "host", "started_at",
                "ended_at")
FILTER_FORM = ("expected KEY OP VALUE with OP one of " + " ".join(OPERATORS)
               + ", e.g. ra>=75, method=la-maml or config.params.alpha_init=0.1")


class Claim(NamedTuple):
    run_id: int | None      # the new 'running' row; None when the combination is taken
    holder: str = ""        # why it is taken: "already done", "running in process N"

_ABANDON = "UPDATE runs SET status='failed', error='interrupted (its process died)', ended_at=? WHERE id=?"


# Settings that only say how many CPU threads compute a run: a run of a cell on two threads is that cell's
# run (a sweep skips it, a table shows it, its checkpoint resumes on one thread), not another experiment.
# They change the order of float sums (two runs drift apart by rounding, as a resumed run on another count
# does, so a seed rerun on another count is not bit-equal) and the time, which the tables mark; not the
# experiment. What chooses another computation (device, fast paths, batch sizes) stays in the identity.
NOT_IDENTITY = ("train_threads",)


def _defaults(method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default of every optional RunConfig setting, and of every hyperparameter of ``method`` (none for
    a method this version does not know)."""
    from ..config import RunConfig
    from ..methods import method_class
    defaults = {name: f.get_default(call_default_factory=True) for name, f in RunConfig.model_fields.items()
                if not f.is_required() and name != "params"}
    try:
        return defaults, method_class(method).Params().model_dump()
    except UserError:
        return defaults, {}


def canonical_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config without the settings that hold their default value, and without NOT_IDENTITY's.

    So a field added to RunConfig or to a method later (at a default that keeps the old
    behaviour) leaves the identity of earlier runs unchanged: their stores stay usable.
    """
    defaults, param_defaults = _defaults(config.get("method", ""))
    canonical = {k: v for k, v in config.items()
                 if k not in NOT_IDENTITY and (k == "params" or k not in defaults or v != defaults[k])}
    canonical["params"] = {k: v for k, v in (config.get("params") or {}).items()
                           if k not in param_defaults or v != param_defaults[k]}
    if isinstance(canonical.get("analyses"), list):     # a set of series: [a, b] and [b, a] are one run
        canonical["analyses"] = sorted(canonical["analyses"])
    return canonical


def filled_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every setting it does not name at its default (RunConfig's and the method's): how a
    run written before a setting existed reads today, so it compares equal to a run that names it."""
    defaults, param_defaults = _defaults(config.get("method", ""))
    return {**defaults, **config, "params": {**param_defaults, **(config.get("params") or {})}}


def config_hash(config: dict[str, Any]) -> str:
    """Identity of a run's configuration: the same settings always give the same hash."""
    return hashlib.sha256(json.dumps(canonical_config(config), sort_keys=True).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# What a run's metrics.json holds that a filter may compare (``metrics.<key>``): the summary metrics,
# the anytime ones (runs with eval_every) and the costs.
METRIC_KEYS = ("ra", "bti", "bwt", "learning_accuracy", "fwt", "aaa", "min_acc", "worst_case_accuracy",
               "train_time_s", "eval_time_s", "wall_time_s", "ms_per_update", "updates", "peak_rss_mb")


def filter_keys() -> list[str]:
    """Every key a filter may name: the store's columns, ``metrics.<key>``, ``config.<run field>`` and
    ``config.params.<hyperparameter>`` of any method."""
    from ..config import RunConfig
    from ..methods import METHODS
    params = sorted({name for cls in METHODS.values() for name in cls.Params.model_fields})
    return [*COLUMNS, *(f"metrics.{name}" for name in METRIC_KEYS),
            *(f"config.{name}" for name in RunConfig.model_fields if name != "params"),
            *(f"config.params.{name}" for name in params)]


def _suggest(key: str, known: list[str]) -> str:
    """``; did you mean X?`` for the known key with the same last part, or the closest spelling."""
    last = key.rpartition(".")[2]
    same_name = [k for k in known if k.rpartition(".")[2] == last]
    close = same_name or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else \
        f"; use a column ({', '.join(COLUMNS)}), metrics.<key>, config.<run field> or config.params.<hyperparameter>"


def parse_filter(text: str) -> tuple[str, list[Any]]:
    """``key OP value`` -> (SQL condition with placeholders, parameters).

    ``key`` is a column name, ``metrics.<key>``, ``config.<field>`` or ``config.params.<hyperparameter>``; any other
    key (which would silently match nothing) is refused with the nearest known one. ``true``/``false`` match
    booleans, ``null`` (with = or !=) a setting left null; ``!=`` keeps the runs where the key is null or
    absent (they are not equal to the value), and a ``config.<field>`` a run was written without reads as
    that field's default, as the run did.
    """
    match = _FILTER.match(text)
    if not match:
        raise UserError(f"--where {text!r}: malformed filter; {FILTER_FORM}")
    key, op, raw = match.group(1), match.group(2), match.group(3).strip()
    value = raw if key in TEXT_COLUMNS and raw.lower() not in ("null", "none") else _filter_value(raw)
    if value is None and op not in ("=", "!="):
        raise UserError(f"--where {text!r}: null compares only with = or !=")
    if key in COLUMNS:
        expression, parameters = key, []
    else:
        known = filter_keys()
        if key not in known:
            raise UserError(f"--where {text!r}: unknown key {key!r}{_suggest(key, known)}")
        document, _, path = key.partition(".")          # "config" or "metrics", then the path inside it
        expression, parameters = f"json_extract({document}, ?)", ["$." + path]
        default = _run_default(path) if document == "config" else None
        if default is not None:
            expression, parameters = f"COALESCE({expression}, ?)", parameters + [default]
    if value is None:
        return f"{expression} IS {'NOT ' if op == '!=' else ''}NULL", parameters
    if op == "!=":
        return f"({expression} IS NULL OR {expression} != ?)", parameters + parameters + [value]
    return f"{expression} {op} ?", parameters + [value]


def _filter_value(raw: str) -> Any:
    """A filter's value as SQLite compares it with the stored JSON: numbers, 1/0 for true/false (how
    json_extract reads JSON booleans), None for null, else the text."""
    if raw.lower() in ("true", "false"):
        return int(raw.lower() == "true")
    if raw.lower() in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return raw


def _run_default(field: str) -> Any:
    """The default of the run setting ``field`` as SQLite holds it (a scalar), or None (no default, a list,
    or a hyperparameter, whose default depends on the method)."""
    from ..config import RunConfig
    info = RunConfig.model_fields.get(field)
    if info is None or info.is_required():
        return None
    default = info.get_default(call_default_factory=True)
    return int(default) if isinstance(default, bool) else default if isinstance(default, (int, float, str)) else None


def open_store(path: str | Path) -> "Store":
    """The results store at ``path``, which must exist already (reading never creates one)."""
    if not Path(path).exists():
        raise UserError(f"--store {path}: no results store there")
    return Store(path)


# How long opening a store waits for other processes that create or upgrade it at the same moment
OPEN_PATIENCE_S = 60.0


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        waited = 0.0
        while True:
            try:
                self._create()
                return
            except sqlite3.OperationalError as error:
                # Two processes making a new store at once: switching it to WAL, or creating its tables,
                # can fail at once with "database is locked" rather than wait (SQLite does not wait where
                # waiting could deadlock). Try again, briefly; the loser then finds it made.
                if "locked" not in str(error) or waited >= OPEN_PATIENCE_S:
                    raise UserError(f"--store {self.path}: cannot open it as a results store ({error})") from None
                time.sleep(0.05)
                waited += 0.05
            except (OSError, sqlite3.DatabaseError) as error:
                raise UserError(f"--store {self.path}: cannot open it as a results store ({error})") from None

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn, conn:
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            if "pid" not in columns:  # stores written before runs recorded their process
                conn.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
            if "pid_start" not in columns:    # ... and when that process started
                conn.execute("ALTER TABLE runs ADD COLUMN pid_start REAL")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=60000")
        conn.isolation_level = "DEFERRED"
        return conn

    def start(self, config: dict[str, Any]) -> int:
        """Record ``config`` as running in this process, unconditionally: ``lamaml run`` runs what it is
        asked to, even again. Sweeps use ``claim``."""
        with closing(self._connect()) as conn, conn:
            return self._insert(conn, config)

    def claim(self, config: dict[str, Any]) -> Claim:
        """Record ``config`` as running in this process, unless it is done or running in a live process.

        Checked and recorded in one transaction holding SQLite's write lock (BEGIN IMMEDIATE), so of
        several processes claiming a combination at once exactly one gets it. A row left running by a
        dead process of this host is marked failed and the combination taken over. A row running on
        another host does not block: its process cannot be checked from here, and a dead one would
        block the combination for good.
        """
        digest = config_hash(config)
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                holder, abandoned = self._holder(conn, config, digest)
                if holder:
                    conn.rollback()
                    return Claim(None, holder)
                conn.executemany(_ABANDON, [(_now(), run_id) for run_id in abandoned])
                run_id = self._insert(conn, config, digest)
                conn.commit()
                return Claim(run_id)
            except BaseException:
                conn.rollback()
                raise

    @staticmethod
    def _holder(conn: sqlite3.Connection, config: dict[str, Any], digest: str) -> tuple[str, list[int]]:
        """Who holds ``config`` ("" if nobody), and the ids of its rows left running by dead processes here.

        Rows are matched by the hash of their stored config, not their config_hash column: stores
        written before canonical_config hashed the same run differently (see done_hashes)."""
        here, abandoned = platform.node(), []
        rows = conn.execute("SELECT id, status, host, pid, pid_start, config FROM runs WHERE benchmark=? AND method=?"
                            " AND seed=? AND status IN ('done', 'running')",
                            (config["benchmark"], config["method"], config["seed"]))
        for run_id, status, host, pid, pid_start, stored in rows:
            if config_hash(json.loads(stored)) != digest:
                continue
            if status == "done":
                return "already done", []
            if host == here and pid is not None:
                if alive(pid, pid_start):
                    return f"running in process {pid}", []
                abandoned.append(run_id)
        return "", abandoned

    @staticmethod
    def _insert(conn: sqlite3.Connection, config: dict[str, Any], digest: str | None = None) -> int:
        cursor = conn.execute(
            "INSERT INTO runs (config_hash, benchmark, method, seed, config, status, code_version, host,"
            " pid, pid_start, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (digest or config_hash(config), config["benchmark"], config["method"], config["seed"],
             json.dumps(config, sort_keys=True), __version__, platform.node(), os.getpid(),
             process_start(os.getpid()), _now()))
        return int(cursor.lastrowid)

    def finish(self, run_id: int, metrics: dict[str, Any]) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE runs SET status='done', metrics=?, ra=?, bti=?, train_time_s=?, wall_time_s=?,"
                         " ended_at=? WHERE id=?",
                         (json.dumps(metrics), metrics.get("ra"), metrics.get("bti"), metrics.get("train_time_s"),
                          metrics.get("wall_time_s"), _now(), run_id))

    def add_done(self, config: dict[str, Any], metrics: dict[str, Any]) -> int:
        """Record a run finished elsewhere (exported.py: restored from a table's runs file), host ``imported``."""
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO runs (config_hash, benchmark, method, seed, config, status, metrics, ra, bti,"
                " train_time_s, code_version, host, started_at, ended_at)"
                " VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, 'imported', ?, ?)",
                (config_hash(config), config["benchmark"], config["method"], config["seed"],
                 json.dumps(config, sort_keys=True), json.dumps(metrics), metrics.get("ra"), metrics.get("bti"),
                 metrics.get("train_time_s"), __version__, _now(), _now()))
            return int(cursor.lastrowid)

    def release(self, run_id: int) -> None:
        """Undo a claim that was never run (its row removed): the combination is free to claim again."""
        with closing(self._connect()) as conn, conn:
            conn.execute("DELETE FROM runs WHERE id=? AND status='running'", (run_id,))

    def fail(self, run_id: int, error: str) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE runs SET status='failed', error=?, ended_at=? WHERE id=?", (error, _now(), run_id))

    def restart(self, run_id: int, config: dict[str, Any]) -> bool:
        """Row ``run_id`` back to ``running`` for a resumed run; False where it is not a row of ``config``."""
        with closing(self._connect()) as conn, conn:
            cursor = conn.execute("UPDATE runs SET status='running', error=NULL, ended_at=NULL, host=?, pid=?,"
                                  " pid_start=?"
                                  " WHERE id=? AND config_hash=?",
                                  (platform.node(), os.getpid(), process_start(os.getpid()), run_id,
                                   config_hash(config)))
            return cursor.rowcount == 1

    def query(self, filters: Iterable[str] = ()) -> list[dict[str, Any]]:
        conditions, parameters = [], []
        for text in filters:
            condition, values = parse_filter(text)
            conditions.append(condition)
            parameters.extend(values)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(conditions) if conditions else "") + " ORDER BY id"
        with closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, parameters)]

    def mark_abandoned(self) -> int:
        """Runs left 'running' by a process of this host that no longer exists: mark them failed."""
        with closing(self._connect()) as conn, conn:
            stale = [row[0] for row in conn.execute(
                "SELECT id, pid, pid_start FROM runs WHERE status='running' AND host=?", (platform.node(),))
                if row[1] is not None and not alive(row[1], row[2])]
            conn.executemany("UPDATE runs SET status='failed', error='interrupted (its process died)', ended_at=?"
                             " WHERE id=?", [(_now(), run_id) for run_id in stale])
        return len(stale)

    def done_hashes(self) -> set[str]:
        """Identities of the finished runs, recomputed from their stored configs (see canonical_config)."""
        with closing(self._connect()) as conn:
            return {config_hash(json.loads(row[0])) for row in conn.execute("SELECT config FROM runs WHERE status='done'")}
