"""Table 2's ordering of methods beside the paper's: for each column the paper gives RA means for, its
ranking, ours of the same methods, Kendall's tau between them, and every pair the paper orders judged
on our seeds as a claim would be (claims.evaluate_claim: Welch's t-test, unjudged on one seed).

On part of a benchmark (``--tasks`` below its count) the paper's numbers are not ours to match, but its
ordering is still the question a reader asks first: the section then gives the paper's order without
its numbers and says what a few tasks can and cannot tell about it.
"""
from __future__ import annotations

import itertools

from scipy.stats import kendalltau

from ...data import benchmark_info
from .claims import METHOD_NAMES, NOT_SUPPORTED, SUPPORTED, WITHIN_NOISE, evaluate_claim, ours_stat
from .paper import paper_table2

SAME, REVERSED, NOISE = "in the paper's order", "reversed", "within noise"
ONE_SAME, ONE_REVERSED = "a side of one seed, means in the paper's order", "a side of one seed, means reversed"
ONE_EQUAL = "a side of one seed, means equal"


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
    groups: dict[str, list[str]] = {SAME: [], REVERSED: [], NOISE: [], ONE_SAME: [], ONE_REVERSED: [], ONE_EQUAL: []}
    for better, worse in itertools.combinations(ranked, 2):
        a, b = ours_stat(cells, column, better, "ra"), ours_stat(cells, column, worse, "ra")
        verdict = evaluate_claim({"kind": "compare", "metric": "ra", "op": ">", "a": better, "b": worse}, a, b)
        text = f"{_name(better)} > {_name(worse)} ({verdict.detail})"
        if verdict.verdict == "too few seeds":    # no spread on one side: the means alone, unjudged
            groups[ONE_SAME if a.mean > b.mean else ONE_REVERSED if a.mean < b.mean else ONE_EQUAL].append(text)
        else:
            groups[{SUPPORTED: SAME, NOT_SUPPORTED: REVERSED, WITHIN_NOISE: NOISE}[verdict.verdict]].append(text)
    return groups


def _scope_paragraph(column: str, tasks: int | None, samples: int | None, seeds: list[int]) -> str:
    """What runs on part of this column's benchmark can and cannot say of the paper's ordering."""
    info = benchmark_info(column.split("/")[0])
    fewer_tasks = bool(tasks and tasks < info.n_tasks)
    fewer_samples = bool(samples and samples < info.samples_per_task)
    spread = f"{min(seeds)} seed{'s' if min(seeds) > 1 else ''}" if min(seeds) == max(seeds) else \
        f"{min(seeds)} to {max(seeds)} seeds"
    noise = (f"Each mean here is over {spread}, while the paper's spreads are not at hand. ")
    if not fewer_tasks and not fewer_samples:   # this column whole; the table's others are not
        return ("These runs cover the whole of this benchmark, but not of the table's others, so the table "
                "compares no number with the paper's; its order is compared here. " + noise.rstrip())
    parts = ([f"the first {tasks} of the benchmark's {info.n_tasks} tasks"] if fewer_tasks else []) + \
        ([f"{samples} of each task's {info.samples_per_task:,} training samples"] if fewer_samples else [])
    text = f"These runs cover {' and '.join(parts)}, so they test the paper's ordering, not its numbers. "
    if fewer_tasks:
        text += (f"What {tasks} tasks can say: how well each method learns a task in one pass and keeps the "
                 f"{tasks - 1} before it. What they cannot: forgetting acts here on at most {tasks - 1} earlier "
                 f"tasks against {info.n_tasks - 1} in the paper, so differences in forgetting (where the paper "
                 "credits La-MAML's asynchronous, conservative update) have little room to show. ")
    return text + noise + ("An order that holds here says the methods start as the paper's end; one that does "
                           "not may still change over the data not run.")


def ordering_section(cells: dict, tasks: int | None, part: bool = False, samples: int | None = None) -> list[str]:
    """The section's lines (none when no column of ``cells`` has the paper's numbers); ``tasks``: the
    tasks each run covered (None: all); ``samples``: the training samples per task (None: all);
    ``part``: the table covers part of some benchmark, so no number of the paper's is shown."""
    columns = [c for c in dict.fromkeys(c for c, _ in cells) if paper_ranking(c)]
    if not columns:
        return []
    lines = ["", "## The ordering beside the paper's", ""]
    for column in columns:
        ranking = paper_ranking(column)
        stats = {m: ours_stat(cells, column, m, "ra") for m, _ in ranking}
        ours = {m: stat.mean for m, stat in stats.items() if stat is not None}
        ranked = [m for m, _ in ranking if m in ours]
        missing = [_name(m) for m, _ in ranking if m not in ours and (column, m) in cells]
        absent = [_name(m) for m, _ in ranking if (column, m) not in cells]
        if part:
            lines += [_scope_paragraph(column, tasks, samples, [stats[m].n for m in ranked] or [0]), ""]
            # its numbers are for the whole benchmark: its order only, never a number beside ours
            lines.append(f"**{column}**, the paper's order by RA (whole benchmark): "
                         + " > ".join(_name(m) for m, _ in ranking) + ".")
        else:
            lines.append(f"**{column}**, the paper's RA: " + " > ".join(f"{_name(m)} {v:.2f}" for m, v in ranking) + ".")
        if len(ranked) < 2:
            lines += ["", f"Too few of its methods have run to compare orders ({', '.join(missing + absent)} not).", ""]
            continue
        ordered = sorted(ranked, key=lambda m: -ours[m])
        lines.append("Ours, same methods: " + " > ".join(
            f"{_name(m)} {ours[m]:.2f} ({stats[m].n} seed{'s' if stats[m].n > 1 else ''})" for m in ordered)
            + (f"; not run yet: {', '.join(missing)}" if missing else "")
            + (f"; not in this table: {', '.join(absent)}" if absent else "") + ".")
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
