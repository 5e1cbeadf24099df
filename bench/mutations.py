"""Hand mutations of the La-MAML look-ahead core: does the test suite catch each one?

Each mutation below is one plausible bug in the core shared by La-MAML, C-MAML, Sync La-MAML and
La-ER (``src/lamaml/methods/lookahead/`` and ``la_er.py``), written as textual
substitutions with a one-line reason why it matters. For every mutation the script applies the
substitutions, runs pytest on the chosen test files, records whether any test failed (and which),
and reverts. A mutation no test notices is a bug the suite would let through.

    python bench/mutations.py                      # every mutation, the default test files
    python bench/mutations.py --only M3,M9b        # M3 means M3a and M3b; M9b only M9b
    python bench/mutations.py --tests tests/test_lookahead_pins.py --jobs 2
    python bench/mutations.py --list               # the mutations and why each matters

How it runs: a temporary ``git worktree`` of HEAD (under the system temp dir; removed at the end,
also on Ctrl-C or failure, then ``git worktree prune``), into which the working tree's current
``src/`` and ``tests/`` are copied, so uncommitted changes to the core and to the tests are what is
checked (other files, e.g. pyproject.toml, are HEAD's). pytest runs there with
``PYTHONPATH=<worktree>/src``, ``OMP_NUM_THREADS=1`` and no bytecode written, so the mutated source
is what gets imported. The unmutated suite runs once first; if it already fails, nothing is
mutated. With ``--jobs N`` there are N worktrees, each running one mutation at a time.

Every ``old`` text must occur exactly once in its file (after the mutation's earlier
substitutions); a mutation whose target is missing or ambiguous is reported as stale, not run.
A mutated run that exceeds ``--timeout`` (a hang) counts as caught.
After a redesign of the core, update the targets so each mutation still expresses its bug.

Prints a Markdown table (mutation, caught, the first failing tests). Exit status: 0 every mutation
caught; 1 some mutation survived (takes precedence); 2 a stale target or a bad argument; 3 the
check could not be made (the unmutated suite fails, or pytest itself broke).
"""
from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# test_authors_protocol.py is the only file that pins La-ER's push after the last glance (M9b; the
# other four let it through) and takes a few seconds.
DEFAULT_TESTS = ("tests/test_lookahead_pins.py", "tests/test_lookahead.py", "tests/test_fast_path.py",
                 "tests/test_baselines.py", "tests/test_authors_protocol.py")
SHOWN_FAILURES = 3
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", ".hypothesis")

CORE = "src/lamaml/methods/lookahead/"
LEARNER = CORE + "learner.py"
UPDATE = CORE + "update.py"
AUTOGRAD = CORE + "autograd.py"
CLOSED_FORM = CORE + "closed_form.py"
LA_ER = "src/lamaml/methods/la_er.py"


@dataclass(frozen=True)
class Edit:
    path: str     # relative to the repository root
    old: str      # must occur exactly once
    new: str


@dataclass(frozen=True)
class Mutation:
    id: str
    title: str
    why: str
    edits: tuple[Edit, ...]

    @property
    def name(self) -> str:
        return f"{self.id} {self.title}"


def mutation(id: str, title: str, why: str, *edits: tuple[str, str, str]) -> Mutation:
    return Mutation(id, title, why, tuple(Edit(*e) for e in edits))


MUTATIONS: tuple[Mutation, ...] = (
    mutation("M1", "meta_loss default mean->last",
             "the authors' code averages the meta-loss over every inner step; the paper's equation uses the last",
             (LEARNER, 'meta_loss: Literal["mean", "last"] = Field("mean"',
              'meta_loss: Literal["mean", "last"] = Field("last"')),
    mutation("M2", "replay dropped from the meta-batch",
             "without replayed samples in the meta-loss there is no protection against forgetting",
             (LEARNER, "        if replay is None:\n            return x, y, tasks",
              "        if True:\n            return x, y, tasks")),
    mutation("M3", "rates after weights",
             "Algorithm 1 updates alpha first and steps the weights with the new rates",
             (UPDATE, "        state.rates.add_(rate_grad, alpha=-rate_lr)     # rates first: the weights step uses the new rates\n",
              ""),
             (UPDATE, "        state.weights.add_(weight_grad, alpha=-weight_lr)\n",
              "        state.weights.add_(weight_grad, alpha=-weight_lr)\n"
              "    if rate_grad is not None:\n        state.rates.add_(rate_grad, alpha=-rate_lr)\n")),
    mutation("M4", "relu dropped from the weight step",
             "a negative rate would step the weights uphill; the paper clips rates at zero for the weight update",
             (UPDATE, "state.weights.addcmul_(torch.relu(state.rates), weight_grad",
              "state.weights.addcmul_(state.rates, weight_grad")),
    mutation("M5", "rate clipping removed",
             "unclipped rate gradients let alpha jump by orders of magnitude in one step",
             (UPDATE, "        clip_(rate_grad, clip)\n", "")),
    mutation("M6", "weights and rates clipped jointly",
             "the authors clip the two gradients separately; a joint norm shrinks both differently",
             (UPDATE, "    clip_(weight_grad, clip)\n    if rate_grad is not None:\n        clip_(rate_grad, clip)\n",
              "    if rate_grad is not None:\n        joint = torch.cat([weight_grad, rate_grad])\n"
              "        clip_(joint, clip)\n"
              "        weight_grad, rate_grad = joint[:len(weight_grad)], joint[len(weight_grad):]\n"
              "    else:\n        clip_(weight_grad, clip)\n    if rate_grad is not None:\n")),
    mutation("M7a", "inner clamp removed (autograd)",
             "the authors' CIFAR and La-ER code clamp inner gradients element-wise; without it big gradients blow up",
             (AUTOGRAD, "                grads = [g.clamp(-plan.inner_clamp, plan.inner_clamp) for g in grads]",
              "                pass")),
    mutation("M7b", "inner clamp removed (closed form)",
             "same as M7a in the closed form every MLP run takes",
             (CLOSED_FORM, "                    self.inner_grad.clamp_(-plan.inner_clamp, plan.inner_clamp)",
              "                    pass")),
    mutation("M8a", "closed form ignores mean_over_steps",
             "meta_loss='last' would silently run as 'mean' on every MLP run",
             (CLOSED_FORM, "plan.chunks, plan.mean_over_steps)", "plan.chunks, True)")),
    mutation("M8b", "autograd ignores mean_over_steps",
             "same as M8a on the autograd backend (La-ER, every conv net)",
             (AUTOGRAD, "if plan.mean_over_steps or stop == len(x):", "if True:")),
    mutation("M9", "first-sight memory push removed",
             "La-MAML, C-MAML and Sync would never fill their replay memory",
             (LEARNER, "   # each sample enters memory once\n            self.memory.add(x, y, task)",
              "   # each sample enters memory once\n            pass")),
    mutation("M9b", "La-ER's push after the last glance removed",
             "La-ER (as the authors' ER) pushes after its last glance; without it La-ER never replays",
             (LEARNER, "            self.memory.add(*self.last_batch, task)", "            pass")),
    mutation("M10", "rate update sign flipped",
             "alpha would ascend the meta-loss",
             (UPDATE, "state.rates.add_(rate_grad, alpha=-rate_lr)", "state.rates.add_(rate_grad, alpha=rate_lr)")),
    mutation("M11", "meta-loss at the weights before each inner step (autograd)",
             "the meta-loss must be taken after the look-ahead step, or there is no look-ahead",
             (AUTOGRAD, "            fast = {name: w - rates[name] * g for (name, w), g in zip(fast.items(), grads)}\n"
                        "            if plan.mean_over_steps or stop == len(x):\n"
                        "                losses.append(self.loss(self.forward(fast, meta_x), meta_y, meta_tasks))\n",
              "            if plan.mean_over_steps or stop == len(x):\n"
              "                losses.append(self.loss(self.forward(fast, meta_x), meta_y, meta_tasks))\n"
              "            fast = {name: w - rates[name] * g for (name, w), g in zip(fast.items(), grads)}\n")),
    mutation("M12", "closed form sums meta-gradients over steps instead of averaging",
             "the step size would grow with the batch size (number of inner steps)",
             (CLOSED_FORM, "weight_grad = self.meta_sum.div_(n)", "weight_grad = self.meta_sum")),
    mutation("M13", "closed form drops relu'(alpha) from the rate gradient",
             "with relu in the inner step, rates at or below zero get no gradient; without the mask they do",
             (CLOSED_FORM, "                self.rate_sum.mul_(torch.sign(rates))\n", "                pass\n")),
    mutation("M14", "La-ER weight gradient from the incoming batch only",
             "La-ER's weights follow the replay loss on the meta-batch (replay + batch), not the batch alone",
             (LEARNER, "self.loss(self.model(meta_x), meta_y, meta_tasks)", "self.loss(self.model(x), y, task)")),
    mutation("M15", "closed form always uses relu(alpha) in the inner step",
             "the CIFAR and La-ER code step with raw alpha inside; relu_in_inner=False would be ignored",
             (CLOSED_FORM, "rates = torch.relu(state.rates) if plan.relu_in_inner else state.rates",
              "rates = torch.relu(state.rates)")),
    mutation("M16", "second order silently first order",
             "second_order=True would run first order without saying so",
             (AUTOGRAD, "create_graph=plan.second_order)", "create_graph=False)")),
    mutation("M17", "incoming batch dropped from the meta-batch",
             "the meta-loss must include the current batch, or the current task is not learned by the meta step",
             (LEARNER, "return torch.cat([replay[0], x]), torch.cat([replay[1], y]), torch.cat([replay[2], tasks])",
              "return replay[0], replay[1], replay[2]")),
    mutation("M18", "autograd always uses relu(alpha) in the inner step",
             "same as M15 on the autograd backend (La-ER and every conv net)",
             (AUTOGRAD, "        if plan.relu_in_inner:\n            rates = {name: torch.relu(a) for name, a in rates.items()}\n",
              "        rates = {name: torch.relu(a) for name, a in rates.items()}\n")),
    mutation("M19", "La-ER default meta_loss last->mean",
             "La-ER's defaults are the authors' eralg4.py, which counts only the last inner step",
             (LA_ER, 'Field("last", description="only the last inner step counts")',
              'Field("mean", description="only the last inner step counts")')),
    mutation("M20", "La-ER default relu_in_inner False->True",
             "eralg4.py steps with raw alpha in the inner loop",
             (LA_ER, "relu_in_inner: bool = Field(False", "relu_in_inner: bool = Field(True")),
    mutation("M21", "La-ER default inner_clamp 2.0->None",
             "eralg4.py clamps inner gradients at the clip value",
             (LA_ER, "inner_clamp: float | None = Field(2.0", "inner_clamp: float | None = Field(None")),
    mutation("M22", "sync weight step by opt_lr instead of opt_wt",
             "Sync La-MAML and C-MAML step the weights by the scalar beta (opt_wt), not the rates' eta",
             (LEARNER, "weight_lr=p.opt_wt if self.options.sync_update else None",
              "weight_lr=getattr(p, 'opt_lr', p.opt_wt) if self.options.sync_update else None")),
    mutation("M23", "closed form taken with task heads",
             "the closed form has one shared softmax; with task heads it would learn the wrong loss",
             (LEARNER, "plain_loss = self.heads is None and type(self).loss is Method.loss",
              "plain_loss = type(self).loss is Method.loss")),
)


class UsageError(Exception):
    """A bad argument: one line on stderr, exit status 2."""


class CheckFailed(Exception):
    """The check could not be made: one line on stderr, exit status 3."""


@dataclass
class Outcome:
    mutation: Mutation
    status: str                           # "caught", "survived", "stale" or "error"
    detail: str = ""                      # why stale, or what broke
    failed: list[str] = field(default_factory=list)
    summary: str = ""                     # pytest's last line
    seconds: float = 0.0


# -- running pytest in a worktree ----------------------------------------------------------------

RUNNING: set[subprocess.Popen] = set()     # pytest runs in flight, stopped on Ctrl-C or SIGTERM
RUNNING_LOCK = threading.Lock()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_env(worktree: Path, repo: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(worktree / "src"), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    # conftest looks for the data next to the repository; the worktree has no such neighbour.
    data = repo.parent / "shared" / "data"
    if "LAMAML_DATA" not in env and data.is_dir():
        env["LAMAML_DATA"] = str(data)
    return env


def run_pytest(worktree: Path, repo: Path, tests: list[str], timeout: float | None):
    """(pytest's exit status or None on timeout, failed test ids, last line, seconds)."""
    start = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--tb=no", *tests]
    process = subprocess.Popen(command, cwd=worktree, env=test_env(worktree, repo), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with RUNNING_LOCK:
        RUNNING.add(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None, [], f"timed out after {timeout:.0f} s", time.monotonic() - start
    except BaseException:                  # Ctrl-C or SIGTERM arriving in this thread
        process.kill()
        process.wait()
        raise
    finally:
        with RUNNING_LOCK:
            RUNNING.discard(process)
    failed = []
    for line in stdout.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            failed.append(line.split(" ", 1)[1].split(" - ", 1)[0].strip())
    lines = [line for line in stdout.splitlines() if line.strip()]
    last = lines[-1].strip("= ") if lines else (stderr.strip().splitlines() or ["no output"])[-1]
    return process.returncode, failed, last, time.monotonic() - start


def apply(worktree: Path, m: Mutation) -> tuple[dict[Path, str], str]:
    """Mutated texts by file and an empty string, or ({}, why the target is stale). Writes nothing."""
    texts: dict[Path, str] = {}
    for edit in m.edits:
        path = worktree / edit.path
        if path not in texts:
            if not path.exists():
                return {}, f"stale: {edit.path} not found"
            texts[path] = path.read_text()
        count = texts[path].count(edit.old)
        if count != 1:
            what = "target not found" if count == 0 else f"target ambiguous ({count} occurrences)"
            first = edit.old.strip().splitlines()[0][:60]
            return {}, f"stale: {what} in {edit.path}: {first!r}"
        texts[path] = texts[path].replace(edit.old, edit.new)
    return texts, ""


def run_mutation(worktree: Path, repo: Path, m: Mutation, tests: list[str], timeout: float) -> Outcome:
    mutated, stale = apply(worktree, m)
    if stale:
        return Outcome(m, "stale", stale)
    originals = {path: path.read_text() for path in mutated}
    try:
        for path, text in mutated.items():
            path.write_text(text)
        code, failed, last, seconds = run_pytest(worktree, repo, tests, timeout)
    finally:
        for path, text in originals.items():
            path.write_text(text)
    if code is None:                       # a hang is a bug the suite noticed
        return Outcome(m, "caught", last, failed, last, seconds)
    if code == 0:
        return Outcome(m, "survived", "", [], last, seconds)
    if code in (1, 2):                     # tests failed / errors during collection
        return Outcome(m, "caught", "", failed, last, seconds)
    return Outcome(m, "error", f"pytest exit status {code}: {last}", failed, last, seconds)


def make_worktree(repo: Path, parent: Path, name: str) -> Path:
    worktree = parent / name
    git(repo, "worktree", "add", "--detach", "--quiet", str(worktree), "HEAD")
    for folder in ("src", "tests"):       # the working tree's versions, uncommitted changes included
        shutil.rmtree(worktree / folder, ignore_errors=True)
        shutil.copytree(repo / folder, worktree / folder, ignore=COPY_IGNORE)
    return worktree


def remove_worktrees(repo: Path, parent: Path, worktrees: list[Path]) -> None:
    for worktree in worktrees:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=repo, capture_output=True)
    shutil.rmtree(parent, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True)


# -- the report ----------------------------------------------------------------------------------

def short_test(test_id: str) -> str:
    """tests/test_fast_path.py::test_x[a-b] -> test_fast_path::test_x."""
    file, _, name = test_id.partition("::")
    return f"{Path(file).stem}::{name.split('[', 1)[0]}" if name else Path(file).stem


def failing_tests_cell(outcome: Outcome) -> str:
    if outcome.status == "stale" or outcome.status == "error":
        return outcome.detail.removeprefix("stale: ").replace("|", "\\|")
    if outcome.status == "survived":
        return f"none ({outcome.summary})"
    if not outcome.failed:
        return outcome.summary
    counts: dict[str, int] = {}
    for test_id in outcome.failed:
        counts[short_test(test_id)] = counts.get(short_test(test_id), 0) + 1
    shown = [f"`{name}`" + (f" ×{n}" if n > 1 else "") for name, n in list(counts.items())[:SHOWN_FAILURES]]
    more = len(counts) - SHOWN_FAILURES
    return f"{len(outcome.failed)} failed: " + ", ".join(shown) + (f", +{more} more tests" if more > 0 else "")


CAUGHT = {"caught": "yes", "survived": "**NO**", "stale": "stale", "error": "error"}


def table(outcomes: list[Outcome]) -> str:
    rows = ["| Mutation | Caught | Failing tests (parametrisations counted) |", "|---|---|---|"]
    for o in outcomes:
        rows.append(f"| {o.mutation.name} | {CAUGHT[o.status]} | {failing_tests_cell(o)} |")
    return "\n".join(rows)


# -- the command -----------------------------------------------------------------------------------

def select(only: str | None) -> list[Mutation]:
    """--only M3,M9b: an id names itself and its lettered variants (M3 -> M3a, M3b; M1 -> M1 only)."""
    if not only:
        return list(MUTATIONS)
    chosen = []
    for token in (t.strip() for t in only.split(",") if t.strip()):
        matches = [m for m in MUTATIONS
                   if m.id == token or (m.id.startswith(token) and m.id[len(token):].isalpha()
                                        and m.id[len(token):].islower())]
        if not matches:
            raise UsageError(f"--only {token}: no such mutation (see --list)")
        chosen += [m for m in matches if m not in chosen]
    return [m for m in MUTATIONS if m in chosen]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated mutation ids, e.g. M1,M9 (M3 means M3a and M3b)")
    parser.add_argument("--tests", default=",".join(DEFAULT_TESTS),
                        help="comma-separated test files, relative to the repository root")
    parser.add_argument("--jobs", type=int, default=1, help="mutations run at once, each in its own worktree")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one pytest run may take (default: 10x the unmutated run, at least 300)")
    parser.add_argument("--list", action="store_true", help="list the mutations and why each matters")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mutations = select(args.only)
    if args.list:
        for m in mutations:
            print(f"{m.name}\n    why: {m.why}")
        return 0
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be an integer >= 1")
    repo = Path(git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    if not tests:
        raise UsageError("--tests: name at least one test file")
    for test in tests:
        if not (repo / test).is_file():
            raise UsageError(f"--tests {test}: no such file under {repo}")

    def interrupted(signum, frame):        # SIGTERM cleans up like Ctrl-C
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)

    started = time.monotonic()
    parent = Path(tempfile.mkdtemp(prefix="lamaml-mutations-"))
    worktrees: list[Path] = []
    pool: ThreadPoolExecutor | None = None
    stopping = threading.Event()
    try:
        for i in range(min(args.jobs, len(mutations))):
            worktrees.append(make_worktree(repo, parent, f"wt{i}"))
        first = worktrees[0]
        where = subprocess.run([sys.executable, "-c", "import lamaml; print(lamaml.__file__)"], cwd=first,
                               env=test_env(first, repo), capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(first)):
            raise CheckFailed(f"the worktree imports lamaml from {where or 'nowhere'}, not {first}/src")

        print(f"unmutated suite: {' '.join(tests)}", file=sys.stderr, flush=True)
        code, failed, last, baseline = run_pytest(first, repo, tests, args.timeout)
        if code != 0:
            names = ", ".join(failed[:SHOWN_FAILURES]) or last
            raise CheckFailed(f"the unmutated suite already fails ({last}): {names}; fix that first")
        timeout = args.timeout or max(300.0, 10 * baseline)
        print(f"unmutated suite passes ({last}); {len(mutations)} mutations, timeout {timeout:.0f} s each",
              file=sys.stderr, flush=True)

        free: queue.Queue[Path] = queue.Queue()
        for worktree in worktrees:
            free.put(worktree)
        done = [0]
        progress = threading.Lock()

        def one(m: Mutation) -> Outcome:
            worktree = free.get()
            try:
                outcome = run_mutation(worktree, repo, m, tests, timeout)
            finally:
                free.put(worktree)
            if stopping.is_set():          # killed by the interrupt: not a result
                return outcome
            with progress:
                done[0] += 1
                print(f"[{done[0]}/{len(mutations)}] {m.name}: {outcome.status}"
                      f" ({outcome.detail or outcome.summary}, {outcome.seconds:.0f} s)", file=sys.stderr, flush=True)
            return outcome

        pool = ThreadPoolExecutor(max_workers=len(worktrees))
        outcomes = list(pool.map(one, mutations))
    finally:
        stopping.set()
        with RUNNING_LOCK:                 # on an interrupt, stop the runs in flight before cleaning up
            for process in RUNNING:
                process.kill()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)   # each worker reverts its files and returns
        remove_worktrees(repo, parent, worktrees)

    print(table(outcomes))
    counts = {s: sum(o.status == s for o in outcomes) for s in CAUGHT}
    print(f"\n{counts['caught']} of {len(outcomes)} caught, {counts['survived']} survived, {counts['stale']} stale, "
          f"{counts['error']} errors; tests: {', '.join(tests)}; {time.monotonic() - started:.0f} s")
    if counts["survived"]:
        return 1
    if counts["stale"]:
        return 2
    if counts["error"]:
        return 3
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as error:
        print(f"mutations: {error}", file=sys.stderr)
        sys.exit(2)
    except CheckFailed as error:
        print(f"mutations: {error}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("mutations: interrupted; worktrees removed", file=sys.stderr)
        sys.exit(130)
