"""Table 1's claims section and the runs written beside it, on hand-made metrics (no training)."""
import csv
import io

import pytest

import lamaml.experiments.reproduce.claims as claims_module
import lamaml.experiments.reproduce.table1 as table1
from lamaml.experiments.reproduce.claims import (CLAIM_METRICS, NOT_SUPPORTED, SUPPORTED, WITHIN_NOISE, Stat,
                                                 claim_problems, evaluate_claim, table1_claims)
from lamaml.experiments.reproduce.paper import TABLE1_BENCHMARKS, TABLE1_METHODS
from lamaml.experiments.store import config_hash
from lamaml.experiments.sweep import combinations

RA_ABOVE = {"id": "a-above-b", "kind": "compare", "a": "la-maml", "metric": "ra", "op": ">", "b": "mer"}
FASTER = {"id": "a-faster", "kind": "compare", "a": "la-maml", "metric": "train_time_s", "op": "<", "b": "mer"}
SIX_TIMES = {"id": "six-times", "kind": "ratio", "a": "mer", "metric": "train_time_s", "op": ">", "b": "la-maml",
             "value": 6}
# where the packaged claims may come from: public texts, never a file outside the repository
SOURCES = ("arXiv 2102.05824 (reproducibility report)", "the authors' blog post (mila.quebec)")


def run(ra, bti=-5.0, train=30.0, seed=0, commit="abc1234", config=None):
    return {"ra": ra, "bti": bti, "train_time_s": train, "eval_time_s": 2.5, "learning_accuracy": ra - bti,
            "seed": seed, "code_commit": commit, **({"config": config} if config else {})}


# Two cells of 5 seeds with std 1 each: SE = sqrt(1/5 + 1/5) = 0.632 on 8 df, Welch's critical t at
# p 0.05 (two-sided) 2.306: a margin must clear 1.459.
@pytest.mark.parametrize("a_mean, verdict", [(78.6, SUPPORTED), (78.3, WITHIN_NOISE), (77.0, WITHIN_NOISE),
                                             (75.4, NOT_SUPPORTED)])
def test_a_comparison_is_judged_by_welchs_t_test(a_mean, verdict):
    result = evaluate_claim(RA_ABOVE, Stat(a_mean, 1.0, 5), Stat(77.0, 1.0, 5))
    assert result.verdict == verdict
    assert f"t {(a_mean - 77.0) / 0.4 ** 0.5:+.2f}, 8.0 df" in result.detail    # 78.3: t 2.06, p 0.074


def test_the_margin_just_inside_the_critical_t_is_noise_and_just_outside_is_not():
    needed = 2.306004 * (1 / 5 + 1 / 5) ** 0.5       # scipy.stats.t.ppf(0.975, 8) x SE
    assert evaluate_claim(RA_ABOVE, Stat(77.0 + needed - 0.01, 1.0, 5), Stat(77.0, 1.0, 5)).verdict == WITHIN_NOISE
    assert evaluate_claim(RA_ABOVE, Stat(77.0 + needed + 0.01, 1.0, 5), Stat(77.0, 1.0, 5)).verdict == SUPPORTED


def test_welchs_degrees_of_freedom_follow_the_noisier_side():
    # s = 3 on 3 seeds against s = 0.1 on 5: df near n_A - 1 = 2, so t 3.5 is not enough (critical 4.30)
    result = evaluate_claim(RA_ABOVE, Stat(83.0, 3.0, 3), Stat(77.0, 0.1, 5))
    assert result.verdict == WITHIN_NOISE and ", 2.0 df," in result.detail
    from lamaml.experiments.reproduce.claims import welch_df
    assert welch_df(1 / 5, 1 / 5, 5, 5) == pytest.approx(8.0)
    assert welch_df(9 / 3, 0.0, 3, 5) == pytest.approx(2.0)


def test_a_less_than_claim_is_supported_by_a_smaller_mean():
    assert evaluate_claim(FASTER, Stat(30.0, 1.0, 5), Stat(470.0, 20.0, 5)).verdict == SUPPORTED
    assert evaluate_claim(FASTER, Stat(470.0, 20.0, 5), Stat(30.0, 1.0, 5)).verdict == NOT_SUPPORTED


# La-MAML 30 s; stds of 10 % on 5 seeds: the delta method's SE of r = A/B is r sqrt(0.01/5 + 0.01/5) =
# 0.0632 r on 8 df, so r - 6 clears 2.306 SE from r = 6 / (1 - 0.1458) = 7.02 (MER 210.7 s) on.
@pytest.mark.parametrize("mer_time, verdict", [(300.0, SUPPORTED), (212.0, SUPPORTED), (209.0, WITHIN_NOISE),
                                               (180.0, WITHIN_NOISE), (90.0, NOT_SUPPORTED)])
def test_a_ratio_is_judged_against_its_stated_value(mer_time, verdict):
    result = evaluate_claim(SIX_TIMES, Stat(mer_time, mer_time / 10, 5), Stat(30.0, 3.0, 5))
    assert result.verdict == verdict
    ratio = mer_time / 30
    assert f"= {ratio:.2f}, t {(ratio - 6) / (ratio * 0.004 ** 0.5):+.2f}, 8.0 df" in result.detail


def test_no_spread_on_either_side_leaves_the_means_to_decide():
    result = evaluate_claim(RA_ABOVE, Stat(78.0, 0.0, 3), Stat(77.0, 0.0, 3))
    assert (result.verdict, result.detail) == (SUPPORTED, "78.00 vs 77.00: +1.00; no spread")


def test_one_seed_has_no_spread_to_judge_a_difference_against():
    result = evaluate_claim(RA_ABOVE, Stat(90.0, 0.0, 1), Stat(50.0, 1.0, 5))
    assert (result.verdict, result.detail) == ("too few seeds", "90.00 vs 50.00: +40.00; 1 and 5 seed(s)")


def test_the_section_judges_each_claim_on_the_paper_and_on_ours_and_quotes_its_source(monkeypatch):
    claims = {"paper_seeds": 5, "claims": [
        {**RA_ABOVE, "benchmarks": ["mnist-rotations"], "quote": "better than MER", "source": "arXiv 2102.05824"},
        {**FASTER, "benchmarks": ["mnist-rotations"], "quote": "faster", "source": "arXiv 2102.05824", "note": "time"},
        {**RA_ABOVE, "id": "vs-c-maml", "b": "c-maml", "benchmarks": ["mnist-rotations"], "quote": "q",
         "source": "s"}]}
    monkeypatch.setattr(claims_module, "table1_claims", lambda: claims)
    cells = {("mnist-rotations", "mer"): [run(77.0 + d, train=470.0 + d) for d in (-1, 0, 1)],
             ("mnist-rotations", "la-maml"): [run(74.0 + d, train=30.0 + d) for d in (-1, 0, 1)],
             ("mnist-rotations", "c-maml"): []}
    rows = {line.split(" | ")[0][2:]: line for line in claims_module.claims_section(cells) if line.startswith("| `")}
    # Paper: La-MAML 77.42 +/- 0.65, MER 77.42 +/- 0.78 over 5 seeds; ours: 74 vs 77 on 3 seeds of std 1,
    # SE 0.816, t -3.67 on 4 df: p 0.021
    assert "| La-MAML RA > MER RA | *within noise* (77.42 vs 77.42: +0.00, t +0.00, 7.7 df, p 1.000) " \
           "| **not supported** (74.00 vs 77.00: -3.00, t -3.67, 4.0 df, p 0.021) |" in rows["`a-above-b`"]
    assert "| n/a | supported (30 s vs 470 s: -440, t +538.89, 4.0 df, p < 0.001) |" in rows["`a-faster`"]
    assert rows["`vs-c-maml`"].endswith("| not run |")
    section = "\n".join(claims_module.claims_section(cells))
    assert "Ours, of 3: 1 supported, 1 not supported, 1 not run." in section
    assert '- `a-faster`: "faster" (arXiv 2102.05824; time)' in section


def test_the_table_names_its_runs_file_and_judges_the_claims(monkeypatch):
    monkeypatch.setattr(table1, "table1_notes", lambda: {})
    cells = {("mnist-rotations", m): [run(70.0 + i, seed=i) for i in range(2)] for m in TABLE1_METHODS}
    table = table1.table1_markdown(cells, 2, "lamaml reproduce table1", runs_csv="table1-runs.csv")
    assert "The runs behind it, one row each: `table1-runs.csv`, beside this file." in table
    assert "All 14 runs ran clean commit abc1234." in table
    claims = [c for c in table1_claims()["claims"] if "mnist-rotations" in c["benchmarks"]]
    assert sum(line.startswith("| `") for line in table.splitlines()) == len(claims)


def test_a_dirty_run_is_flagged_in_the_header():
    cells = {("mnist-rotations", "online"): [run(50.0, commit="abc1234"), run(51.0, seed=1, commit="abc1234+dirty")],
             ("mnist-rotations", "ewc"): [run(55.0, commit="def5678")]}
    line = table1.commits_line(cells)
    assert line.startswith("**Warning: 1 of 3 runs ran uncommitted code (+dirty)")
    assert "abc1234 (1 run), abc1234+dirty (1 run), def5678 (1 run)" in line
    assert table1.commits_line({("mnist-rotations", "ewc"): [run(55.0, commit=None)]}).startswith(
        "**Warning: 1 of 1 runs recorded no commit")
    assert table1.commits_line({("b", "m"): [run(1.0, commit="abc"), run(2.0, commit="def")]}) == \
        "All 2 runs ran clean commits: abc (1 run), def (1 run)."


def test_the_runs_file_has_one_row_per_run_in_the_tables_order_and_by_seed():
    spec = table1.table1_spec(3, benchmarks=["mnist-rotations", "mnist-permutations"], methods=["online", "la-maml"])
    configs = {(c.benchmark, c.method, c.seed): c.model_dump() for one in spec for c in combinations(one)}
    order = [("mnist-rotations", "online"), ("mnist-rotations", "la-maml"), ("mnist-permutations", "online")]
    cells = {key: [run(60.0 + seed / 3, seed=seed, config=configs[(*key, seed)]) for seed in (2, 0, 1)]
             for key in order}
    cells[("mnist-permutations", "la-maml")] = []
    rows = list(csv.DictReader(io.StringIO(table1.runs_csv(cells))))
    assert list(rows[0]) == table1.RUN_COLUMNS == [
        "benchmark", "method", "seed", "ra", "bti", "learning_accuracy", "train_time_s", "eval_time_s",
        "code_commit", "code_used", "train_threads_used", "resumed", "config_hash", "settings"]
    assert [(r["benchmark"], r["method"], r["seed"]) for r in rows] == \
        [(b, m, str(s)) for b, m in order for s in (0, 1, 2)]
    first = rows[0]
    assert (first["ra"], first["bti"], first["learning_accuracy"]) == ("60.0000", "-5.0000", "65.0000")
    assert first["config_hash"] == config_hash(configs[("mnist-rotations", "online", 0)])
    assert first["settings"] == "batch_size=1 evaluate=seen init=xavier-uniform params.lr=0.0003"
    assert rows[3]["settings"] == "evaluate=seen glances=5"     # La-MAML's Rotations preset is its defaults


def test_write_table1_puts_the_runs_beside_each_table(tmp_path, monkeypatch):
    monkeypatch.setattr(table1, "table1_notes", lambda: {})
    cells = {("mnist-rotations", "online"): [run(50.0, seed=1), run(52.0, seed=0)]}
    targets = [tmp_path / "out" / "table1.md", tmp_path / "docs" / "try.md"]
    table = table1.write_table1(cells, 2, "lamaml reproduce table1", targets)
    assert table == (tmp_path / "out" / "table1.md").read_text() and "`table1-runs.csv`" in table
    assert "`try-runs.csv`" in (tmp_path / "docs" / "try.md").read_text()
    lines = (tmp_path / "docs" / "try-runs.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("mnist-rotations,online,0,52.0000,")
    assert not list(tmp_path.rglob("*.tmp"))


def test_every_packaged_claim_names_known_benchmarks_methods_and_metrics_and_cites_its_words():
    data = table1_claims()
    assert claim_problems(data) == []
    for claim in data["claims"]:
        assert set(claim["benchmarks"]) <= set(TABLE1_BENCHMARKS)
        assert {claim["a"], claim["b"]} <= set(TABLE1_METHODS)
        assert claim["metric"] in CLAIM_METRICS and claim["quote"] and claim["source"].startswith(SOURCES)
    assert len(data["claims"]) >= 10


def test_claim_problems_names_each_bad_field():
    bad = {"paper_seeds": 5, "claims": [
        {"id": "x", "benchmarks": ["mnist-split"], "kind": "ratio", "a": "la-maml", "b": "nope", "metric": "fwt",
         "op": ">=", "quote": "", "source": "s"},
        {"id": "x", "benchmarks": [], "kind": "compare", "a": "mer", "b": "mer", "metric": "ra", "op": ">",
         "quote": "q", "source": "s", "value": 2}]}
    problems = "\n".join(claim_problems(bad))
    for expected in ("id 'x' appears 2 times", "unknown benchmark 'mnist-split'", "unknown method 'nope' as b",
                     "unknown metric 'fwt'", "op must be one of > <", "quote must be a non-empty string",
                     "a ratio needs a positive number as value", "benchmarks must list at least one",
                     "a and b are the same method", "a comparison takes no value"):
        assert expected in problems


def test_the_glance_names_the_cells_a_partial_store_has_not_run_yet():
    cells = {("mnist-rotations", "la-maml"): [run(77.0)], ("mnist-rotations", "online"): [run(50.0)],
             ("mnist-permutations", "mer"): [run(70.0)]}
    assert claims_module._glance(cells) == [
        "- mnist-rotations: La-MAML's RA 77.00 is NOT above all of Online, EWC, GEM (only online; ewc not run yet; "
        "gem not run yet); MER not run yet.",
        "- mnist-permutations: La-MAML not run yet."]
