"""Table 2's ordering of methods beside the paper's: for each column the paper gives RA means for, its
ranking, ours of the same methods, Kendall's tau between them, and every pair the paper orders judged
on our seeds as a claim would be (claims.evaluate_claim: Welch's t-test, unjudged on one seed).

On part of a benchmark (``--tasks`` below its count) the paper's numbers are not ours to match, but its
ordering is still the question a reader asks first: the section then gives the paper's order without
its numbers and says what a few tasks can and cannot tell about it.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import kendalltau

from ...data import benchmark_info
from .claims import METHOD_NAMES, NOT_SUPPORTED, SUPPORTED, WITHIN_NOISE, evaluate_claim, ours_stat
from .paper import paper_table2

SAME, REVERSED, NOISE = "in the paper's order", "reversed", "within noise"
ONE_SAME, ONE_REVERSED = "a side of one seed, means in the paper's order", "a side of one seed, means reversed"


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def paper_ranking(column: str) -> list[tuple[str, float]]:
    """The paper's methods of a column, best RA first."""
    benchmark, setting = column.split("/")
    ra = paper_table2()["ra"].get(benchmark, {}).get(setting, {})
    return sorted(((m, float(v)) for m, v in ra.items()), key=lambda mv: -mv[1])


def pair_verdicts(cells: dict, column: str, ranked: list[str]) -> dict[str, list[str]]:
    """Each pair of ``ranked`` (the paper's order, better first) as our seeds see it, grouped by verdict;
    each entry like ``La-MAML > ER (47.68 vs 43.12: +4.56, t +1.95, 3.6 df, p 0.130)``."""
    groups: dict[str, list[str]] = {SAME: [], REVERSED: [], NOISE: [], ONE_SAME: [], ONE_REVERSED: []}
    for better, worse in itertools.combinations(ranked, 2):
        claim = {"kind": "compare", "metric": "ra", "op": ">", "a": better, "b": worse}
        verdict = evaluate_claim(claim, ours_stat(cells, column, better, "ra"), ours_stat(cells, column, worse, "ra"))
        text = f"{_name(better)} > {_name(worse)} ({verdict.detail})"
        if verdict.verdict == "too few seeds":    # no spread on one side: the means alone, unjudged
            mean = lambda m: ours_stat(cells, column, m, "ra").mean  # noqa: E731
            groups[ONE_SAME if mean(better) > mean(worse) else ONE_REVERSED].append(text)
        else:
            groups[{SUPPORTED: SAME, NOT_SUPPORTED: REVERSED, WITHIN_NOISE: NOISE}[verdict.verdict]].append(text)
    return groups


def _scope_paragraph(column: str, tasks: int | None) -> str:
    total = benchmark_info(column.split("/")[0]).n_tasks
    if not tasks or tasks >= total:     # every task, fewer samples of each
        return ("These runs see fewer training samples per task than the paper's, so they test its ordering, "
                "not its numbers.")
    return (f"These runs cover the first {tasks} of the benchmark's {total} tasks, so they test the paper's "
            f"ordering, not its numbers. What {tasks} tasks can say: how well each method learns a task in one "
            f"pass and keeps the few before it. What they cannot: forgetting acts here on at most {tasks - 1} "
            f"earlier tasks against {total - 1} in the paper, so differences in forgetting (where the paper "
            "credits La-MAML's asynchronous, conservative update) have little room to show; and each mean is over few seeds "
            "(one for most baselines), while the paper's spreads are not at hand. An order that holds here "
            "says the methods start as the paper's end; one that does not may still change over the tasks "
            "not run.")


def ordering_section(cells: dict, tasks: int | None, part: bool = False) -> list[str]:
    """The section's lines (none when no column of ``cells`` has the paper's numbers); ``tasks``: the
    tasks each run covered (None: all); ``part``: the runs cover part of each benchmark (fewer tasks
    or fewer samples per task), so the paper's numbers are not shown."""
    columns = [c for c in dict.fromkeys(c for c, _ in cells) if paper_ranking(c)]
    if not columns:
        return []
    lines = ["", "## The ordering beside the paper's", ""]
    for column in columns:
        ranking = paper_ranking(column)
        part = part or bool(tasks and tasks < benchmark_info(column.split("/")[0]).n_tasks)
        if part:
            lines += [_scope_paragraph(column, tasks), ""]
        ours = {m: float(np.mean([r["ra"] for r in cells.get((column, m)) or []]))
                for m, _ in ranking if cells.get((column, m))}
        missing = [_name(m) for m, _ in ranking if m not in ours]
        ranked = [m for m, _ in ranking if m in ours]
        if part:    # its numbers are for the whole benchmark: its order only, never a number beside ours
            lines.append(f"**{column}**, the paper's order by RA (whole benchmark): "
                         + " > ".join(_name(m) for m, _ in ranking) + ".")
        else:
            lines.append(f"**{column}**, the paper's RA: " + " > ".join(f"{_name(m)} {v:.2f}" for m, v in ranking) + ".")
        if len(ranked) < 2:
            lines += ["", f"Too few of its methods have run to compare orders ({', '.join(missing)} not yet).", ""]
            continue
        ordered = sorted(ranked, key=lambda m: -ours[m])
        n_seeds = {m: len(cells[(column, m)]) for m in ranked}
        lines.append("Ours, same methods: " + " > ".join(
            f"{_name(m)} {ours[m]:.2f} ({n_seeds[m]} seed{'s' if n_seeds[m] > 1 else ''})" for m in ordered)
            + (f"; not run yet: {', '.join(missing)}" if missing else "") + ".")
        if len(ranked) >= 3:
            tau = kendalltau([-i for i in range(len(ranked))], [ours[m] for m in ranked]).statistic
            lines.append(f"Kendall's tau between the two orders over these {len(ranked)} methods: {tau:+.2f} "
                         "(+1: the same order, -1: reversed).")
        groups = pair_verdicts(cells, column, ranked)
        total = sum(len(g) for g in groups.values())
        lines += ["", f"The paper's {total} pairs of them, on our seeds (a pair is judged where both sides have "
                  "at least 2 seeds, by Welch's t-test at p < 0.05, as the claims are):", ""]
        lines += [f"- {verdict} ({len(pairs)}): " + "; ".join(pairs) + "." for verdict, pairs in groups.items() if pairs]
        lines.append("")
    return lines[:-1]
