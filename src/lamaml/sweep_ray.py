"""The Ray engine of ``lamaml sweep`` (optional extra: ``pip install lamaml[ray]``).

Each pending combination becomes one Ray task running the same ``run_one`` as the local engine,
so results are identical whichever engine ran them. With no ``--address`` a local Ray instance is
started (and stopped at the end); with one, the sweep joins that cluster. Workers must see the
same data folder and store path (a shared file system), as with any Ray job.
"""
from __future__ import annotations

import sys
from typing import Any

from .errors import UserError


def run_on_ray(pending: list[dict[str, Any]], store_path: str, data_dir: str | None, threads: int,
               address: str | None, jobs: int) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'lamaml[ray]'") from None
    from .sweep import _label, run_one

    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": jobs, "include_dashboard": False}
        try:
            ray.init(log_to_driver=False, configure_logging=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UserError(f"--address {address}: cannot reach a Ray cluster there ({error})") from None
    try:
        remote = ray.remote(num_cpus=1)(run_one)
        refs = [remote.remote(config, store_path, data_dir, threads) for config in pending]
        results, waiting = [], list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            outcome = ray.get(ready[0])
            results.append(outcome)
            detail = f"RA {outcome['ra']:.2f}" if outcome["status"] == "done" else outcome["error"]
            print(f"  [{len(results)}/{len(pending)}] {_label(outcome['config'])}: {detail}", file=sys.stderr)
        return results
    finally:
        if started_here:
            ray.shutdown()
