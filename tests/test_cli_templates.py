"""The cluster job templates in ``cli/``: shell syntax, SBATCH headers, the `molgen` options they use,
and dry runs with stubbed ``sbatch`` / ``torchrun`` / ``molgen`` on PATH (no SLURM or GPU needed)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "cli"
SCRIPTS = sorted(CLI.glob("*.sh"))
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="bash not installed")


def test_templates_present() -> None:
    names = {p.name for p in SCRIPTS}
    expected = {
        "slurm_conformers_array.sh",
        "slurm_merge.sh",
        "submit_conformers.sh",
        "torchrun_conformers.sh",
        "slurm_train.sh",
        "torchrun_train.sh",
    }
    assert expected <= names, f"missing templates: {sorted(expected - names)}"
    # replaced by the streaming, sharded batch mode (`molgen conformers -o DIR/` + `molgen merge`)
    assert "merge_shards.sh" not in names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    result = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_header(script: Path) -> None:
    """Shebang, strict mode, executable, and every #SBATCH line before the first command (sbatch stops
    reading directives there) with no trailing comment."""
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    for i, line in enumerate(lines):
        if line.startswith("#SBATCH"):
            assert i < first_command, f"{script.name}:{i + 1}: #SBATCH after the first command is ignored"
            assert re.fullmatch(r"#SBATCH --[a-z-]+(=\S+)?", line), f"{script.name}:{i + 1}: {line!r}"


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed")
    result = subprocess.run(
        [shellcheck, "--severity=warning", *map(str, SCRIPTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the options the templates pass to `molgen conformers` / `molgen merge` -------------------------------

# Where `molgen conformers|merge` options follow: the commands themselves, and the templates' own command
# lines, whose extra arguments are passed on (after the script name, or after `--` for the two scripts
# with optional positional arguments).
_CALL = re.compile(
    r"\bmolgen\s+(?P<molgen>conformers|merge)\b"
    r"|cli/slurm_conformers_array\.sh\b(?P<array>)"
    r"|cli/(?:submit|torchrun)_conformers\.sh\b[^#`\n]*?\s--\s(?P<after_dashes>)"
    r"|cli/slurm_merge\.sh\b(?P<merge_job>)"
)
# an option: a dash at the start of a word (not `non-zero`, `$((n-1))`, `a/--b`, `${x:-10}`)
_OPTION = re.compile(r"(?<![\w$/.:=-])(--?[A-Za-z][\w-]*)")


def _logical_lines(text: str) -> list[str]:
    """Lines with shell continuations joined, also in comments (`# cmd \\` + `#   more args`)."""
    return re.sub(r"\\\n[ \t]*#?", " ", text).splitlines()


def used_options(text: str) -> dict[str, set[str]]:
    """{'conformers': {...}, 'merge': {...}}: options written for `molgen conformers|merge`, in commands
    and in the example commands of comments and docs."""
    used: dict[str, set[str]] = {"conformers": set(), "merge": set()}
    for line in _logical_lines(text):
        calls = list(_CALL.finditer(line))
        for k, call in enumerate(calls):
            end = calls[k + 1].start() if k + 1 < len(calls) else len(line)
            if call.group("molgen"):
                command = call.group("molgen")
            else:
                command = "merge" if call.group("merge_job") is not None else "conformers"
            # up to a trailing comment or the end of an inline code span (comments, README)
            segment = re.split(r"\s#\s|`", line[call.end() : end], maxsplit=1)[0]
            used[command].update(_OPTION.findall(segment))
    return used


def _readme_section() -> str:
    """README's `### Batch jobs on a cluster` section (empty if the heading is gone)."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^### Batch jobs on a cluster\n(.*?)(?=^##)", text, flags=re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def test_option_parser() -> None:
    text = (
        "molgen conformers in.smi -o out/ -n \"${N:-10}\" --no-progress --json || s=$?\n"
        "# srun bash -c 'molgen conformers \"$@\"; rc=$?; exit $((rc == 1 ? 0 : rc))' rank \\\n"
        "#   big.smi -o out/ --device cuda\n"
        "`molgen conformers` exits 1 when non-zero ... then molgen merge out/ -o all.sdf --allow-missing\n"
        "sbatch --array=0-127 cli/slurm_conformers_array.sh big.smi out/ --gzip\n"
        "cli/submit_conformers.sh big.smi out/ 64 all.sdf -- --rms 0.5\n"
        "cli/torchrun_conformers.sh big.smi out/ 4   # --not-an-option-of-molgen\n"
        "sbatch --time=1:00:00 cli/slurm_merge.sh out/ partial.sdf --allow-missing\n"
        "| `cli/slurm_conformers_array.sh` | one task per shard (`--array=0-63`) |\n"
        "| `cli/submit_conformers.sh IN OUT/ [-- options]` | merge with `--dependency=afterok:<id>` |\n"
    )
    assert used_options(text) == {
        "conformers": {"-o", "-n", "--no-progress", "--json", "--device", "--gzip", "--rms"},
        "merge": {"-o", "--allow-missing"},
    }


def _cli_options(name: str) -> set[str]:
    """Option names (`-o`, `--output`, `--no-progress`, ...) of `molgen <name>` (typer vendors click in
    recent releases: no `click` import, only the attributes every click version has)."""
    from molgen.cli import app

    group = typer.main.get_command(app)
    command = getattr(group, "commands", {}).get(name)
    assert command is not None, f"`molgen {name}` is not a command of molgen.cli.app"
    opts: set[str] = set()
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option":
            opts.update(param.opts)
            opts.update(param.secondary_opts)
    return opts


@pytest.mark.parametrize("command", ["conformers", "merge"])
def test_template_options_exist(command: str) -> None:
    """Every option the templates and the README's cluster section give `molgen conformers|merge` exists."""
    available = _cli_options(command)
    unknown = {}
    sources = {p.name: p.read_text() for p in SCRIPTS} | {"README.md (cluster section)": _readme_section()}
    for name, text in sources.items():
        missing = used_options(text)[command] - available
        if missing:
            unknown[name] = sorted(missing)
    assert not unknown, f"options not known to `molgen {command}`: {unknown}"


def test_dry_run_options_exist(stubs: dict) -> None:
    """The options the scripts really pass (recorded by the stub `molgen`), shard flags included."""
    task = {**ARRAY_TASK, "NUM_SHARDS": "64"}
    assert _run("slurm_conformers_array.sh", "big.smi", "out/", stubs=stubs, **task).returncode == 0
    assert _run("torchrun_conformers.sh", "big.smi", "out/", "2", stubs=stubs).returncode == 0
    assert _run("slurm_merge.sh", "out/", "--allow-missing", stubs=stubs).returncode == 0
    for call in _calls(stubs["log"]):
        if call[0] == "molgen":
            used = {a for a in call[2:] if re.fullmatch(r"--?[A-Za-z][\w-]*", a)}
            missing = used - _cli_options(call[1])
            assert not missing, f"`molgen {call[1]}` does not know {sorted(missing)}"


def test_templates_use_the_batch_options() -> None:
    """The parser above finds what the templates are meant to pass (so the check is not vacuous)."""
    array = used_options((CLI / "slurm_conformers_array.sh").read_text())["conformers"]
    assert {"-o", "-n", "--no-progress", "--json"} <= array
    gpu = used_options((CLI / "torchrun_conformers.sh").read_text())
    assert {"-o", "-n", "--device", "--threads", "--no-progress", "--json"} <= gpu["conformers"]
    assert {"-o", "--json"} <= gpu["merge"]
    assert {"-o", "--json", "--allow-missing"} <= used_options((CLI / "slurm_merge.sh").read_text())["merge"]


# --- dry runs with stubbed commands --------------------------------------------------------------------------


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _calls(log: Path) -> list[list[str]]:
    """One argument list per stub invocation (the stubs write one argument a line, then '==')."""
    if not log.exists():
        return []
    calls, current = [], []
    for line in log.read_text().splitlines():
        if line == "==":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return calls


_RECORD = 'printf "%s\\n" "$@" >> "$STUB_LOG"; echo "==" >> "$STUB_LOG"\n'


@pytest.fixture
def stubs(tmp_path: Path) -> dict:
    """A bin folder first on PATH with `sbatch`, `molgen`, `torchrun` and `python` stubs that record their
    arguments; `molgen conformers` exits with $STUB_RC."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    # sbatch --parsable prints "jobid[;cluster]": the first call answers 4242;cluster1, the next 4243
    _stub(bin_dir, "sbatch", _RECORD + 'n=$(grep -c "^==$" "$STUB_LOG")\n'
          '[[ $n -eq 1 ]] && echo "4242;cluster1" || echo "$((4241 + n))"\n')
    _stub(bin_dir, "molgen", 'printf "%s\\n" molgen "$@" >> "$STUB_LOG"; echo "==" >> "$STUB_LOG"\n'
          '[[ $1 == conformers ]] && exit "${STUB_RC:-0}"\nexit 0\n')
    # torchrun: drop the launcher's options, run the program once as rank 0 of 1
    _stub(bin_dir, "torchrun", 'printf "%s\\n" torchrun "$@" >> "$STUB_LOG"; echo "==" >> "$STUB_LOG"\n'
          'while [[ $1 != --no-python ]]; do shift; done; shift\n'
          'RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 exec "$@"\n')
    _stub(bin_dir, "python", 'echo 8\n')  # cores (molgen.cluster.available_cpus) or GPU count
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "NUM_SHARDS", "N_CONFS", "DEPENDENCY"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", STUB_LOG=str(log))
    work = tmp_path / "work"
    work.mkdir()
    (work / "big.smi").write_text("CCO ethanol\n")
    return {"env": env, "log": log, "cwd": work}


def _run(script: str, *args: str, stubs: dict, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, str(CLI / script), *args], cwd=stubs["cwd"], env={**stubs["env"], **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_submit_makes_the_merge_depend_on_the_array(stubs: dict) -> None:
    result = _run("submit_conformers.sh", "big.smi", "out/", "64", stubs=stubs)
    assert result.returncode == 0, result.stderr
    array, merge = _calls(stubs["log"])
    assert "--parsable" in array and "--array=0-63" in array
    assert array[array.index("--array=0-63") + 1 :] == [str(CLI / "slurm_conformers_array.sh"), "big.smi", "out/"]
    assert "--parsable" in merge and "--kill-on-invalid-dep=yes" in merge
    assert "--dependency=afterok:4242" in merge  # the array's id, without the ";cluster" of --parsable
    assert merge[-3:] == [str(CLI / "slurm_merge.sh"), "out/", "out.sdf"]
    assert "4242" in result.stdout and "4243" in result.stdout
    assert (stubs["cwd"] / "logs").is_dir()  # SLURM needs the log folder before the jobs start


def test_submit_options(stubs: dict) -> None:
    result = _run("submit_conformers.sh", "big.smi", "out", "8", "all.sdf", "--", "--gzip", "--rms", "0.5",
                  stubs=stubs, DEPENDENCY="afterany")
    assert result.returncode == 0, result.stderr
    array, merge = _calls(stubs["log"])
    assert "--array=0-7" in array
    assert array[-5:] == ["big.smi", "out/", "--gzip", "--rms", "0.5"]
    assert "--dependency=afterany:4242" in merge
    assert merge[-2:] == ["out/", "all.sdf"]


@pytest.mark.parametrize(
    "args, env",
    [(["big.smi"], {}), (["big.smi", "out/", "0"], {}), (["missing.smi", "out/"], {}),
     (["big.smi", "out/", "4"], {"DEPENDENCY": "after"})],
)
def test_submit_usage_errors(stubs: dict, args: list[str], env: dict) -> None:
    result = _run("submit_conformers.sh", *args, stubs=stubs, **env)
    assert result.returncode == 2
    assert _calls(stubs["log"]) == []  # nothing submitted


ARRAY_TASK = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "64", "SLURM_ARRAY_TASK_MIN": "0",
              "SLURM_ARRAY_TASK_MAX": "63", "SLURM_CPUS_PER_TASK": "4"}


@pytest.mark.parametrize("molgen_rc, task_rc", [(0, 0), (1, 0), (2, 2), (137, 137)])
def test_array_task_exit_codes(stubs: dict, molgen_rc: int, task_rc: int) -> None:
    """Exit code 1 (some molecules failed) is a successful task; usage errors and crashes are not."""
    result = _run("slurm_conformers_array.sh", "big.smi", "out", "--gzip", stubs=stubs,
                  STUB_RC=str(molgen_rc), **ARRAY_TASK)
    assert result.returncode == task_rc, result.stderr
    (call,) = _calls(stubs["log"])
    assert call[:5] == ["molgen", "conformers", "big.smi", "-o", "out/"]  # folder mode
    assert {"--no-progress", "--json", "--gzip"} <= set(call)
    assert "--shard-index" not in call and "--num-shards" not in call  # taken from the SLURM array


def test_array_task_partial_resubmission(stubs: dict) -> None:
    """`--array=5,17` has SLURM_ARRAY_TASK_COUNT=2: refused, unless NUM_SHARDS names the shard count."""
    subset = {**ARRAY_TASK, "SLURM_ARRAY_TASK_ID": "17", "SLURM_ARRAY_TASK_COUNT": "2",
              "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "17"}
    refused = _run("slurm_conformers_array.sh", "big.smi", "out/", stubs=stubs, **subset)
    assert refused.returncode == 2 and "NUM_SHARDS" in refused.stderr
    assert _calls(stubs["log"]) == []
    ok = _run("slurm_conformers_array.sh", "big.smi", "out/", stubs=stubs, NUM_SHARDS="64", **subset)
    assert ok.returncode == 0, ok.stderr
    (call,) = _calls(stubs["log"])
    i = call.index("--shard-index")
    assert call[i : i + 4] == ["--shard-index", "17", "--num-shards", "64"]


def test_merge_job(stubs: dict) -> None:
    assert _run("slurm_merge.sh", "out/", stubs=stubs).returncode == 0
    assert _run("slurm_merge.sh", "out", "--allow-missing", stubs=stubs).returncode == 0
    assert _run("slurm_merge.sh", "out/", "all.sdf", stubs=stubs).returncode == 0
    assert _calls(stubs["log"]) == [
        ["molgen", "merge", "out/", "-o", "out.sdf", "--json"],
        ["molgen", "merge", "out/", "-o", "out.sdf", "--json", "--allow-missing"],
        ["molgen", "merge", "out/", "-o", "all.sdf", "--json"],
    ]


@pytest.mark.parametrize("molgen_rc, script_rc", [(0, 0), (1, 0), (2, 1)])
def test_torchrun_conformers(stubs: dict, molgen_rc: int, script_rc: int) -> None:
    """torchrun stops all ranks when one exits non-zero: each rank maps 1 (some molecules failed) to 0;
    the merge runs after the ranks, not after a real failure."""
    result = _run("torchrun_conformers.sh", "big.smi", "out/", "2", stubs=stubs, STUB_RC=str(molgen_rc))
    assert (result.returncode == 0) == (script_rc == 0), result.stderr
    calls = _calls(stubs["log"])
    launcher, rank = calls[0], calls[1]
    assert launcher[:4] == ["torchrun", "--standalone", "--nproc_per_node=2", "--no-python"]
    assert rank[:5] == ["molgen", "conformers", "big.smi", "-o", "out/"]
    assert rank[rank.index("--device") + 1] == "cuda"
    assert rank[rank.index("--threads") + 1] == "4"  # 8 cores / 2 GPUs
    if script_rc == 0:
        assert calls[2] == ["molgen", "merge", "out/", "-o", "out.sdf", "--json"]
    else:
        assert len(calls) == 2


def test_slurm_train_rendezvous(stubs: dict) -> None:
    """The multi-node training job exports the rendezvous (first node, a port from the job ID) and the
    per-task CPU count before srun starts one trainer per GPU."""
    bin_dir = Path(stubs["env"]["PATH"].split(os.pathsep)[0])
    _stub(bin_dir, "scontrol", 'printf "gpu017\\ngpu018\\n"\n')
    _stub(bin_dir, "srun", 'printf "%s\\n" srun "$@" "MASTER=$MASTER_ADDR:$MASTER_PORT" "CPUS=$SRUN_CPUS_PER_TASK" '
          '>> "$STUB_LOG"; echo "==" >> "$STUB_LOG"\n')
    slurm = {"SLURM_JOB_NODELIST": "gpu[017-018]", "SLURM_JOB_ID": "123456", "SLURM_NTASKS": "8",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_CPUS_PER_TASK": "8"}
    result = _run("slurm_train.sh", "--steps", "100", stubs=stubs, **slurm)
    assert result.returncode == 0, result.stderr
    (call,) = _calls(stubs["log"])
    assert call[:4] == ["srun", "python", "-m", "molgen.training.train_conformers"]
    assert call[call.index("--device") + 1] == "cuda"
    assert call[-4:] == ["--steps", "100", f"MASTER=gpu017:{20000 + 123456 % 20000}", "CPUS=8"]
