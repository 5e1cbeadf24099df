"""The paper's claims on the benchmarks of a table, judged on the paper's table and on our runs.

Every comparison the sources state in words on these benchmarks is data
(config/paper/table1_claims.yaml, table2_claims.yaml; checked on load); each is judged on means over
seeds by Welch's t-test of its margin at CLAIM_ALPHA (see evaluate_claim). ``claims_section`` is the
part of ``table1.md`` (and, given table 2's ``ClaimBook``, of ``table2.md``) that shows them, after a
glance at the means alone. A table's cells are keyed ``(column, method)``: a column is a benchmark in
Table 1, a benchmark and setting in Table 2.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Sequence

import numpy as np
import yaml
from scipy.stats import t as student_t

from .paper import TABLE1_BENCHMARKS, TABLE1_METHODS, mean_std, paper_table1
from .tables import thread_counts

CLAIM_METRICS = {"ra": "RA", "bti": "BTI", "train_time_s": "train time"}
METHOD_NAMES = {"online": "Online", "ewc": "EWC", "gem": "GEM", "mer": "MER", "c-maml": "C-MAML",
                "sync-la-maml": "Sync La-MAML", "la-maml": "La-MAML", "iid": "IID", "er": "ER", "icarl": "iCaRL",
                "a-gem": "A-GEM", "meta-bgd": "Meta-BGD", "la-er": "La-ER", "vr-mcl": "VR-MCL",
                "er-ace": "ER-ACE", "der": "DER", "der++": "DER++"}
CLAIM_KINDS = ("compare", "ratio", "difference")
CLAIM_OPS = (">", "<")
SUPPORTED, NOT_SUPPORTED, WITHIN_NOISE = "supported", "not supported", "within noise"
# What a claim's row can say: the three verdicts, then why a claim could not be judged.
VERDICT_ORDER = (SUPPORTED, NOT_SUPPORTED, WITHIN_NOISE, "too few seeds", "not run", "n/a")
# The two-sided level of Welch's t-test a claim's margin must clear, either way: about 2.3 standard
# errors at 5 seeds a side, 2.8 at 3 (a flat 2 SE, the rule before, is an 8-12 % test at those counts).
CLAIM_ALPHA = 0.05


@lru_cache(maxsize=None)
def load_claims(name: str, columns: tuple[str, ...], methods: tuple[str, ...], key: str) -> dict[str, Any]:
    """``{"paper_seeds": n, "claims": [...]}`` from config/paper/<name>, checked on load."""
    data = yaml.safe_load(resources.files("lamaml.config").joinpath(f"paper/{name}").read_text())
    problems = claim_problems(data, columns, methods, key)
    if problems:    # packaged data: a bad entry is a bug in the file, not a user mistake
        raise ValueError(f"config/paper/{name}: " + "; ".join(problems))
    return data


def table1_claims() -> dict[str, Any]:
    """Table 1's claims (config/paper/table1_claims.yaml)."""
    return load_claims("table1_claims.yaml", tuple(TABLE1_BENCHMARKS), tuple(TABLE1_METHODS), "benchmarks")


def claim_problems(data: dict[str, Any], columns: Sequence[str] = TABLE1_BENCHMARKS,
                   methods: Sequence[str] = TABLE1_METHODS, key: str = "benchmarks") -> list[str]:
    """What is wrong with a claims file: unknown columns (``key``: benchmarks, or Table 2's columns),
    methods, metrics, kinds or operators, a repeated id, a missing quote or source, a ratio or a
    difference without its value."""
    problems, one = [], key[:-1]
    if not isinstance(data.get("paper_seeds"), int) or data["paper_seeds"] < 2:
        problems.append("paper_seeds must be an integer >= 2")
    ids = Counter(c.get("id") for c in data.get("claims") or [])
    problems += [f"id {i!r} appears {n} times" for i, n in ids.items() if n > 1]
    for claim in data.get("claims") or []:
        where = f"claim {claim.get('id')!r}"
        for field in ("id", "quote", "source"):
            if not isinstance(claim.get(field), str) or not claim[field].strip():
                problems.append(f"{where}: {field} must be a non-empty string")
        if "note" in claim and not isinstance(claim["note"], str):
            problems.append(f"{where}: note must be a string")
        if not claim.get(key):
            problems.append(f"{where}: {key} must list at least one {one}")
        problems += [f"{where}: unknown {one} {b!r}" for b in claim.get(key) or [] if b not in columns]
        problems += [f"{where}: unknown method {claim.get(side)!r} as {side}" for side in ("a", "b")
                     if claim.get(side) not in methods]
        if claim.get("a") == claim.get("b"):
            problems.append(f"{where}: a and b are the same method")
        if claim.get("metric") not in CLAIM_METRICS:
            problems.append(f"{where}: unknown metric {claim.get('metric')!r}")
        if claim.get("op") not in CLAIM_OPS:
            problems.append(f"{where}: op must be one of {' '.join(CLAIM_OPS)}")
        if claim.get("kind") not in CLAIM_KINDS:
            problems.append(f"{where}: kind must be one of {', '.join(CLAIM_KINDS)}")
        value = claim.get("value")
        positive = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        if claim.get("kind") in ("ratio", "difference") and not positive:
            problems.append(f"{where}: a {claim['kind']} needs a positive number as value")
        if claim.get("kind") == "compare" and "value" in claim:
            problems.append(f"{where}: a comparison takes no value")
    return problems


@dataclass(frozen=True)
class Stat:
    """A cell's metric over seeds: mean, sample std and the number of seeds behind them."""
    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class Verdict:
    verdict: str    # supported, not supported, within noise; or why it could not be judged
    detail: str     # the numbers it was judged on


def claim_text(claim: dict[str, Any]) -> str:
    """The claim in one line, e.g. "La-MAML RA > MER RA", "MER train time / La-MAML train time > 6" or
    "La-MAML RA - ER RA > 10"."""
    metric = CLAIM_METRICS[claim["metric"]]
    a, b = METHOD_NAMES[claim["a"]], METHOD_NAMES[claim["b"]]
    if claim["kind"] in ("ratio", "difference"):
        return f"{a} {metric} {'/' if claim['kind'] == 'ratio' else '-'} {b} {metric} {claim['op']} {claim['value']:g}"
    return f"{a} {metric} {claim['op']} {b} {metric}"


def welch_df(a_part: float, b_part: float, n_a: int, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference whose variance is ``a_part + b_part``
    (s_A^2/n_A + s_B^2/n_B, or their delta-method terms for a ratio)."""
    denominator = (a_part ** 2 / (n_a - 1) if a_part else 0.0) + (b_part ** 2 / (n_b - 1) if b_part else 0.0)
    return (a_part + b_part) ** 2 / denominator


def judge(margin: float, se: float, df: float) -> str:
    """``margin``: how far the means go the claim's way (negative: the other way); ``se``: its standard
    error, on ``df`` degrees of freedom. Supported when t = margin / se clears Welch's critical value
    at CLAIM_ALPHA (two-sided) the claim's way, not supported when it clears it the other way, within
    noise between; with no spread (se 0), the means alone."""
    if se == 0:
        return SUPPORTED if margin > 0 else NOT_SUPPORTED if margin < 0 else WITHIN_NOISE
    critical = float(student_t.ppf(1 - CLAIM_ALPHA / 2, df))
    if margin > critical * se:
        return SUPPORTED
    if margin < -critical * se:
        return NOT_SUPPORTED
    return WITHIN_NOISE


def evaluate_claim(claim: dict[str, Any], a: Stat | None, b: Stat | None) -> Verdict:
    """One claim on one benchmark, from the two methods' statistics of the claim's metric.

    A comparison's margin is the difference of means (A - B for >, B - A for <), its standard error
    sqrt(s_A^2/n_A + s_B^2/n_B); a difference's is A - B minus the stated value (the value minus A - B
    for <), with the same standard error. A ratio's margin is A/B minus the stated value (the value
    minus A/B for <), its standard error the delta method's r * sqrt(s_A^2/(n_A A^2) + s_B^2/(n_B B^2)).
    The margin over its standard error is judged by Welch's t-test (``judge``), its degrees of freedom
    from the two terms of the variance. A std of NaN (a paper's number without its spread) judges on
    the means alone.
    """
    if a is None or b is None:
        return Verdict("no number", "")
    unit = " s" if claim["metric"] == "train_time_s" else ""
    digits = 0 if unit else 2
    sign = 1.0 if claim["op"] == ">" else -1.0
    if claim["kind"] == "ratio":
        if a.mean == 0 or b.mean == 0:
            return Verdict("n/a", "a mean of zero")
        ratio = a.mean / b.mean
        margin = sign * (ratio - claim["value"])
        parts = (ratio ** 2 * a.std ** 2 / (a.n * a.mean ** 2), ratio ** 2 * b.std ** 2 / (b.n * b.mean ** 2))
        means = f"{a.mean:.{digits}f}{unit} / {b.mean:.{digits}f}{unit} = {ratio:.2f}"
    else:
        diff = a.mean - b.mean
        margin = sign * (diff - claim.get("value", 0.0))
        parts = (a.std ** 2 / a.n, b.std ** 2 / b.n)
        means = f"{a.mean:.{digits}f}{unit} vs {b.mean:.{digits}f}{unit}: {diff:+.{digits}f}"
    se = math.sqrt(sum(parts))
    if math.isnan(se):      # no spread known: the means alone
        return Verdict(judge(margin, 0.0, math.inf), f"{means}; means only")
    if min(a.n, b.n) < 2:   # one seed has no spread, so no noise to judge a difference against
        return Verdict("too few seeds", f"{means}; {a.n} and {b.n} seed(s)")
    if se == 0:
        return Verdict(judge(margin, 0.0, math.inf), f"{means}; no spread")
    df = welch_df(*parts, a.n, b.n)
    t = margin / se
    p = float(2 * student_t.sf(abs(t), df))
    p_text = f"p {p:.3f}" if p >= 0.001 else "p < 0.001"
    return Verdict(judge(margin, se, df), f"{means}, t {t:+.2f}, {df:.1f} df, {p_text}")


def ours_stat(cells: dict, benchmark: str, method: str, metric: str) -> Stat | None:
    values = [float(r[metric]) for r in cells.get((benchmark, method)) or [] if r.get(metric) is not None]
    if not values:
        return None
    mean, std = mean_std(values)
    return Stat(mean, std, len(values))


def paper_stat(benchmark: str, method: str, metric: str) -> Stat | None:
    cell = paper_table1().get(benchmark, {}).get(method, {}).get(metric)
    return Stat(float(cell[0]), float(cell[1]), table1_claims()["paper_seeds"]) if cell else None


@dataclass(frozen=True)
class ClaimBook:
    """A table's claims and how its section reads: the claims (``claims()``), the key of a claim's
    columns, the paper's number of a (column, method, metric) (None: there is none; ``paper=None``:
    the section leaves the paper's table out), the glance above them, and what the sentences name."""
    claims: Callable[[], dict[str, Any]]
    key: str
    paper: Callable[[str, str, str], Stat | None] | None
    glance: Callable[[dict], list[str]]
    file: str
    scope: str              # what the claims are about, e.g. "these benchmarks"
    paper_rule: str         # how the paper's column is judged
    part: bool = False      # the runs cover part of each benchmark: a margin stated for a whole one is not judged


def table1_book() -> ClaimBook:
    seeds = table1_claims()["paper_seeds"]
    return ClaimBook(table1_claims, "benchmarks", paper_stat, _glance, "table1_claims.yaml", "these benchmarks",
                     f"The paper's column applies the same rule to its Table 1, taking each std as over {seeds} "
                     "seeds (an assumption); its table has no times.")


def claim_rows(cells: dict, book: ClaimBook | None = None) -> list[tuple[dict[str, Any], str, Verdict, Verdict]]:
    """(claim, column, verdict on the paper's table, verdict on ours) for every claim on every one
    of its columns that the table covers."""
    book = book or table1_book()
    covered = {b for b, _ in cells}
    rows = []
    for claim in book.claims()["claims"]:
        for benchmark in claim[book.key]:
            if benchmark not in covered:
                continue
            side = lambda stat: [stat(benchmark, claim[s], claim["metric"]) for s in ("a", "b")]  # noqa: E731
            paper = evaluate_claim(claim, *side(book.paper)) if book.paper else Verdict("n/a", "")
            ours = evaluate_claim(claim, *side(lambda b, m, k: ours_stat(cells, b, m, k)))
            threads = thread_counts(run for s in ("a", "b") for run in cells.get((benchmark, claim[s])) or [])
            if claim["metric"] == "train_time_s" and len(threads) > 1 and ours.verdict != "no number":
                ours = Verdict("n/a", f"times on {' and '.join(map(str, threads))} training threads; {ours.detail}")
            if book.part and claim["kind"] == "difference" and ours.verdict != "no number":
                ours = Verdict("n/a", f"a margin of {claim['value']:g} stated for the whole benchmark, these runs "
                                      f"cover part of it; {ours.detail}")
            # No number: the paper's table has no times; our store has no finished run of a cell.
            rows.append((claim, benchmark, Verdict("n/a", "") if paper.verdict == "no number" else paper,
                         Verdict("not run", "") if ours.verdict == "no number" else ours))
    return rows


def _verdict_cell(verdict: Verdict) -> str:
    mark = {SUPPORTED: "supported", NOT_SUPPORTED: "**not supported**", WITHIN_NOISE: "*within noise*"}
    text = mark.get(verdict.verdict, verdict.verdict)
    return f"{text} ({verdict.detail})" if verdict.detail else text


def claims_section(cells: dict, book: ClaimBook | None = None) -> list[str]:
    """Every comparison the paper states in words on these benchmarks, judged on its table (unless
    ``book.paper`` is None) and on ours, with the rule, a count per verdict and the words each claim
    rests on."""
    book = book or table1_book()
    data = book.claims()
    rows = claim_rows(cells, book)
    counts = Counter(ours.verdict for _, _, _, ours in rows)
    lines = ["", "## The paper's claims on these numbers", "",
             "Means alone, at a glance:", "", *book.glance(cells), "",
             f"Every comparison the sources at hand state in words on {book.scope} "
             f"(config/paper/{book.file}, which lists what was read and left out; the paper's body is not "
             "among them), judged on means over seeds.",
             "Rule: Welch's t-test of the margin by which the means go the claim's way (for a ratio, the "
             "ratio minus the stated value), t = margin / SE, SE = sqrt(s_A^2/n_A + s_B^2/n_B) (a ratio "
             "r = A/B: r sqrt(s_A^2/(n_A A^2) + s_B^2/(n_B B^2))), on the Welch-Satterthwaite degrees of "
             f"freedom (df): **supported** when the two-sided p is below {CLAIM_ALPHA:g} with t the claim's "
             f"way, **not supported** when it is below {CLAIM_ALPHA:g} with t the other way, **within noise** "
             "otherwise. At 5 seeds a side the margin must clear about 2.3 SE, at 3 seeds 2.8. Where neither "
             "side varies over its seeds (no spread), or a number comes without its std (means only), the means "
             "alone decide.",
             f"{book.paper_rule} Numbers: A vs B: A - B.",
             f"Ours, of {len(rows)}: " + (", ".join(f"{n} {v}" for v, n in sorted(
                 counts.items(), key=lambda item: VERDICT_ORDER.index(item[0]))) or "nothing to judge") + ".",
             "",
             f"| claim | {book.key[:-1]} | comparison |" + (" paper's table |" if book.paper else "") + " ours |",
             "|---|---|---|---|" + ("---|" if book.paper else "")]
    for claim, benchmark, paper, ours in rows:
        lines.append(f"| `{claim['id']}` | {benchmark} | {claim_text(claim)} |"
                     + (f" {_verdict_cell(paper)} |" if book.paper else "") + f" {_verdict_cell(ours)} |")
    lines += ["", "What each claim rests on:", ""]
    for claim in dict.fromkeys(c["id"] for c, *_ in rows):
        entry = next(c for c in data["claims"] if c["id"] == claim)
        where = "; ".join(" ".join(entry[k].split()) for k in ("source", "note") if entry.get(k))
        lines.append(f"- `{claim}`: \"{' '.join(entry['quote'].split())}\" ({where})")
    return lines


def _glance(cells: dict) -> list[str]:
    """Per benchmark, on means alone: La-MAML's RA against Online, EWC and GEM, and MER's training time
    against La-MAML's (on a partial store, only the cells that have runs)."""
    mean = lambda b, m, key: float(np.mean([r[key] for r in cells[(b, m)]]))  # noqa: E731
    lines = []
    for benchmark in dict.fromkeys(b for b, _ in cells):
        ran = lambda m: bool(cells.get((benchmark, m)))  # noqa: E731
        if not ran("la-maml"):
            lines.append(f"- {benchmark}: La-MAML not run yet.")
            continue
        ours = mean(benchmark, "la-maml", "ra")
        baselines = [m for m in ("online", "ewc", "gem") if ran(m)]
        beaten = [m for m in baselines if mean(benchmark, m, "ra") < ours]
        above = "above Online's, EWC's and GEM's" if len(beaten) == 3 else \
            f"NOT above all of Online, EWC, GEM (only {', '.join(beaten) or 'none'}" + \
            "".join(f"; {m} not run yet" for m in ("online", "ewc", "gem") if m not in baselines) + ")"
        speed = "MER not run yet" if not ran("mer") else \
            f"MER trains {mean(benchmark, 'mer', 'train_time_s') / mean(benchmark, 'la-maml', 'train_time_s'):.1f}x " \
            "as long as La-MAML"
        lines.append(f"- {benchmark}: La-MAML's RA {ours:.2f} is {above}; {speed}.")
    return lines
