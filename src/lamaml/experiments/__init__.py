"""Experiments: what the command line does, as a library a Python user can import.

store.py     the results store (SQLite): every run as a row, its config hash as its identity
sweep.py     benchmarks x methods x seeds x a grid, each combination run once; engines.py runs them
             (a local process pool or Ray), ray_cluster.py joins a Ray cluster or says why it cannot
runs.py      one run recorded as ``lamaml run`` records it, and finished runs' metrics read back
             from run folders or a store; record.py keeps those records (store row, metrics.json,
             status.json), and says which could not be written
progress.py  the progress bar (and TensorBoard log) hooks of a run
groups.py    runs grouped by setting (benchmark, method, every setting but the seed): the one grouping
             of the report, the figures and a sweep's progress lines
report.py    results as text: one run's summary, a store's runs, mean +/- std over seeds
plots/       figures from runs' metrics, each with the numbers it draws as CSV
catalog.py   what ``lamaml list`` prints: benchmarks, methods and their presets
reproduce/   the paper's Table 1 and its claims, and the appendix figures

Nothing here is imported by the layers below (data, models, methods, config, engine).
"""
