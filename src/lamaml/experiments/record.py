"""What ``lamaml run`` keeps of a run: its row in a results store and, in its folder, status.json and metrics.json.

status.json says where the run stands (``running``; ``done``; ``failed`` with the error and whether a
checkpoint was kept) and names the store and row the run is recorded in, so a resumed run finishes
that row, even when ``--store`` is not given again, instead of leaving it ``failed`` beside a new one.
Recording is kept apart from running so that a write that fails at the end (a full disk) is
reported with what was kept, and never hides the failure it was recording.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..engine.checkpoint import CURRENT, PREVIOUS
from ..errors import WriteFailed
from .store import Store

STATUS, METRICS = "status.json", "metrics.json"


def run_status(out: Path) -> dict[str, Any]:
    """A run folder's status.json (``{}`` where there is none, or it cannot be read)."""
    try:
        status = json.loads((Path(out) / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


class RunRecord:
    def __init__(self, out: Path | None, store: Path | None, results: Store | None, run_id: int | None):
        self.out, self.store, self.results, self.run_id = out, store, results, run_id

    @classmethod
    def open(cls, config: dict[str, Any], out: Path | None, store: str | Path | None, resumed: bool) -> "RunRecord":
        """Records ``config`` as running; a resumed run takes back the store row its folder names
        (in the store given, or else the one it was first recorded in)."""
        before = run_status(out) if out and resumed else {}
        given = store or before.get("store")
        store = Path(given).absolute() if given else None
        results = run_id = None
        if store:
            results = Store(store)
            try:
                same_row = before.get("store") == str(store) and isinstance(before.get("run_id"), int) \
                    and results.restart(before["run_id"], config)
                run_id = before["run_id"] if same_row else results.start(config)
            except sqlite3.Error as error:
                raise WriteFailed(f"cannot record the run in {store} ({error})") from None
        record = cls(out, store, results, run_id)
        try:
            record._write_status("running")     # a disk already full stops the run here, before it trains
        except WriteFailed as error:
            record.failed(str(error))
            raise
        return record

    def _write_status(self, status: str, **details: Any) -> None:
        if self.out:
            where = {"store": str(self.store), "run_id": self.run_id} if self.results else {}
            write_json_atomic(self.out / STATUS, {"status": status, **details, **where})

    def _checkpoint_kept(self) -> bool:
        return bool(self.out) and any((self.out / name).exists() for name in (CURRENT, PREVIOUS))

    def _status_failed(self, message: str) -> None:
        # The failure being reported matters more than a record of it that a full disk refuses
        try:
            self._write_status("failed", error=message, checkpoint_kept=self._checkpoint_kept())
        except OSError:
            pass

    def failed(self, message: str) -> None:
        """Records a failure as far as the storage allows (a write that fails here is let go)."""
        self._status_failed(message)
        if self.results:
            try:
                self.results.fail(self.run_id, message)
            except (OSError, sqlite3.Error):
                pass

    def done(self, metrics: dict[str, Any], store_extra: dict[str, Any] | None = None) -> None:
        """Records the finished run wherever the storage allows (``store_extra``: keys for the store's row
        only, beside the metrics.json a separate run would write); then, if any record failed, a
        WriteFailed says which, and what was kept."""
        problems, kept = [], []
        if self.results:
            try:
                self.results.finish(self.run_id, {**metrics, **(store_extra or {})})
                kept.append(f"the run is recorded in {self.store}")
            except (OSError, sqlite3.Error) as error:
                problems.append(f"cannot record the run in {self.store} ({error})")
        if self.out:
            try:
                write_json_atomic(self.out / METRICS, metrics)
            except WriteFailed as error:
                problems.append(str(error))
                self._status_failed(str(error))     # not "done": --resume may write the metrics again
            else:
                kept.append(f"its metrics are in {self.out / METRICS}")
                try:
                    self._write_status("done")
                except WriteFailed as error:
                    problems.append(str(error))
        if problems:
            raise WriteFailed("; ".join(problems + kept))
