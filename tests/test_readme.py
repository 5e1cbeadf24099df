"""What a newcomer reads: the README's two commands work on a fresh checkout, and no page, source
file or data file of the package points at a path outside the repository."""
import re
import shlex

from conftest import REPO

from lamaml.cli import build_parser

# Generated records of past runs keep the paths of the machine they ran on.
RECORDS = REPO / "docs" / "results"
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".json"}
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])/work/|la-maml-reference|reference-results\.md|seeds/00\d")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def checked_files():
    yield REPO / "README.md"
    yield REPO / "BENCHMARKS.md"
    yield REPO / "pyproject.toml"
    for folder in (REPO / "src", REPO / "docs"):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and RECORDS not in path.parents:
                yield path


def readme_commands() -> list[str]:
    """The command lines of the README's first code block, comments dropped."""
    block = (REPO / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_no_readme_doc_source_or_data_file_names_a_path_outside_the_repository():
    hits = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            for path in checked_files()
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if OUTSIDE.search(line)]
    assert len(list(checked_files())) > 50 and hits == []


def test_every_relative_link_of_the_readme_and_docs_names_a_file_in_the_repository():
    pages = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            resolved = (page.parent / target).resolve()
            if REPO.resolve() not in resolved.parents or not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert len(pages) >= 8 and broken == []


def test_the_readme_first_command_installs_and_runs_the_main_job_with_the_default_data_folder():
    install, run = readme_commands()[0].split(" && ")
    assert install == "pip install torch==2.13.0 -e ."
    words = shlex.split(run)
    assert words[:2] == ["lamaml", "run"]
    args = build_parser().parse_args(words[1:])
    assert (args.benchmark, args.method, args.seed, args.tasks, args.setting, args.set) == \
        ("mnist-rotations", "la-maml", 0, None, None, [])
    # no --data-dir, so $LAMAML_DATA or ./data; one inside the repository would do too
    assert args.data_dir is None or REPO.resolve() in (REPO / args.data_dir).resolve().parents


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = readme_commands()[1]
    assert test_command == 'pip install torch==2.13.0 -e ".[test,ray]" && python -m pytest -q'
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()
