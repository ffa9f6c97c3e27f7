"""The tiny workflow on a real single-node Slurm cluster, through workflow/profiles/slurm.

The module fixture starts munged, mariadbd, slurmdbd, slurmctld and slurmd with
.ci/slurm_up.sh (installing the Debian packages first if needed) and always stops them by pid
with .ci/slurm_down.sh. The test then runs a short chain of config/test.yaml with the Slurm
profile: starting from the local run's datasets and one pretrained encoder (the session fixture
``tiny_run``, ``--cores 2``, copied with Snakemake's records), six jobs in two waves that
cover every rule the test config gives a GPU: pretraining another encoder from scratch,
fine-tuning, extraction, the Jacobian sensitivity and Euclidean convexity (of the fine-tuned
model), and graph convexity on the extracted features. It checks that every job of the plan
ran as its own, completed Slurm job with the profile's account and partition and the config's
per-rule resources, and that every table (metrics, training histories and tables) equals the
local run's byte for byte: the same config gives the same tables in a second run, from scratch for
the pretraining, under another executor. The whole tiny workflow on Slurm (66 jobs) is too
long for CI: ``REPAUDIT_SLURM_TEST=full`` runs it, from scratch. Without root, Linux or a way
to install Slurm it skips, naming the reason; ``REPAUDIT_SLURM_TEST=0`` skips it too.

Environment: REPAUDIT_SLURM_TEST (``0`` | ``chain`` (default) | ``full``),
REPAUDIT_SLURM_TEST_TIMEOUT (seconds for the Slurm run, default 1800).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT, TRACKED, copy_run, job_counts, snakemake, snakemake_env

from repaudit.resources import DEFAULT_RESOURCES, rule_resources

pytestmark = pytest.mark.workflow

PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
DEFAULT_PROFILE = ROOT / "workflow" / "profiles" / "default" / "config.yaml"
UP, DOWN = ROOT / ".ci" / "slurm_up.sh", ROOT / ".ci" / "slurm_down.sh"
LOCK = Path("/tmp/repaudit-ci-slurm.lock")
RUN_TIMEOUT = int(os.environ.get("REPAUDIT_SLURM_TEST_TIMEOUT", "1800"))
SCOPE = os.environ.get("REPAUDIT_SLURM_TEST", "chain")
# The local run's files the chain starts from (the data and resnet_sup's pretrained weights)
SEED = [
    "results/data/shapes.h5",
    "results/data/digits.h5",
    "results/models/resnet_sup_s0/pretrained.pt",
    "results/models/resnet_sup_s0/pretrain_history.tsv",
]
# Every rule the test config gives a GPU, in two waves: pretraining (of another encoder,
# from scratch), fine-tuning, extraction and the Jacobians, then the Euclidean convexity of
# the fine-tuned model and the graph convexity of the extracted features.
CHAIN = [
    "results/models/resnet_simclr_s0/pretrain_history.tsv",
    "results/metrics/training/digits/resnet_sup_s0/finetuned_digits.tsv",
    "results/metrics/sensitivity/digits/resnet_sup_s0/pretrained.tsv",
    "results/metrics/euclidean_convexity/digits/resnet_sup_s0/finetuned_digits.tsv",
    "results/metrics/convexity/digits/resnet_sup_s0/pretrained.tsv",
]
CHAIN_JOBS = Counter(
    pretrain_encoder=1, finetune_encoder=1, extract_features=1, compute_sensitivity=1,
    compute_euclidean_convexity=1, compute_graph_convexity=1,
)  # fmt: skip
# Threads of every job in both runs: the local run (tiny_run) runs every rule on its default
# one thread, so cap the Slurm run the same way (floating-point results may depend on the
# thread count); the config's cpus then reach sbatch as --cpus-per-task=1.
MAX_THREADS = 1
TABLE_DIRS = ("results/tables", "results/metrics", "results/stats", "results/models")
# Options that change how or where jobs run: the local profile must leave them to the Slurm one.
EXECUTION_KEYS = {
    "executor", "jobs", "cores", "local-cores", "resources", "default-resources",
    "set-resources", "set-threads", "max-threads", "latency-wait", "retries", "scheduler",
}  # fmt: skip


def _profile(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / PROFILE.relative_to(ROOT)).read_text())


def _copy_workflow(src: Path, dest: Path) -> Path:
    """The workflow files of ``src`` (a repository or a run of it) under ``dest``."""
    dest.mkdir(parents=True)
    for name in TRACKED:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (src / name).exists():
            shutil.copy2(src / name, dest / name)
    return dest


# ---------------------------------------------------------------- profile checks (no cluster)


def test_default_profile_cannot_change_slurm_jobs():
    """Stacking the two profiles (Snakemake merges them key by key) changes no Slurm setting."""
    default, slurm = yaml.safe_load(DEFAULT_PROFILE.read_text()), _profile()
    assert not EXECUTION_KEYS & default.keys(), sorted(EXECUTION_KEYS & default.keys())
    differing = {k for k in default.keys() & slurm.keys() if default[k] != slurm[k]}
    assert not differing, differing


def _wanted(root: Path, rule: str) -> dict[str, int]:
    """``rule``'s first-attempt requests under config/test.yaml (its resources over defaults)."""
    return rule_resources(yaml.safe_load((root / "config" / "test.yaml").read_text()), rule)


def test_slurm_profile_leaves_resources_to_the_config():
    """Every rule has default resources (a renamed rule would fail to parse), the GPU rules are
    the five that run networks at scale, and the profile carries only cluster plumbing."""
    proc = snakemake(ROOT, "--list-rules", "--configfile", "config/test.yaml")
    rules = set(proc.stdout.split()) - {"all"}
    assert rules == set(DEFAULT_RESOURCES), sorted(rules ^ set(DEFAULT_RESOURCES))
    gpu_rules = {r for r in rules if _wanted(ROOT, r)["gpu"]}
    assert gpu_rules == {
        "pretrain_encoder", "finetune_encoder", "extract_features",
        "compute_sensitivity", "compute_euclidean_convexity",
    }  # fmt: skip
    profile = _profile()
    assert profile["executor"] == "slurm"
    assert set(profile["default-resources"]) == {"slurm_account", "slurm_partition"}
    assert not {"set-resources", "set-threads"} & profile.keys()


# ---------------------------------------------------------------- the cluster


def _run_script(script: Path, scratch: Path, timeout: int) -> subprocess.CompletedProcess:
    # Output to a file, not a pipe: the daemons inherit no descriptor that would keep it open.
    out = scratch.parent / f"{script.stem}.out"
    with out.open("w") as fh:
        try:
            proc = subprocess.run(
                ["bash", str(script)],
                env=dict(os.environ, SLURM_SCRATCH=str(scratch)),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return subprocess.CompletedProcess(script.name, rc, out.read_text(), "")


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as err:
        return f"({err})"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node cluster: account ``ci``, partition ``debug``; scratch dir yielded."""
    if SCOPE == "0":
        pytest.skip("REPAUDIT_SLURM_TEST=0")
    if SCOPE not in ("chain", "full"):
        pytest.fail(f"REPAUDIT_SLURM_TEST must be 0, chain or full, not {SCOPE!r}")
    if not sys.platform.startswith("linux"):
        pytest.skip("the Slurm test needs Linux")
    if os.geteuid() != 0:
        pytest.skip("the Slurm test needs root (it installs Slurm and starts its daemons)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("Slurm is not installed and there is no apt-get to install it")
    lock = LOCK.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        pytest.skip(f"another test session holds the CI Slurm cluster ({LOCK})")
    scratch = tmp_path_factory.mktemp("slurm") / "cluster"
    try:
        up = _run_script(UP, scratch, timeout=600)
        if up.returncode == 77:
            pytest.skip(up.stdout.strip().splitlines()[-1] if up.stdout.strip() else "skipped")
        if up.returncode != 0:
            logs = "\n".join(f"--- {p}\n{_tail(p)}" for p in sorted((scratch / "log").glob("*")))
            pytest.fail(f"slurm_up.sh failed (rc {up.returncode}):\n{up.stdout[-4000:]}\n{logs}")
        yield scratch
    finally:
        down = _run_script(DOWN, scratch, timeout=180)
        print(f"slurm_down.sh (rc {down.returncode}):\n{down.stdout}")
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _sacct(run_id: str) -> list[dict[str, str]]:
    fields = "JobIDRaw,Comment,State,Account,Partition,ReqMem,Timelimit,ReqCPUS,ReqTRES"
    start = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    proc = subprocess.run(
        ["sacct", "-X", "--parsable2", "--noheader", "--delimiter", "\x1f", "--name", run_id,
         "--starttime", start, "--format", fields],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    keys = fields.split(",")
    return [dict(zip(keys, line.split("\x1f"), strict=True)) for line in proc.stdout.splitlines()]


def _minutes(timelimit: str) -> int:
    """Slurm's [D-]HH:MM:SS as minutes."""
    days, _, hms = timelimit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def _rule(comment: str) -> str:
    """rule_<name> or rule_<name>_wildcards_<values>, as the plugin writes --comment."""
    assert comment.startswith("rule_"), comment
    return comment[len("rule_") :].split("_wildcards_")[0]


def _diagnostics(work: Path, scratch: Path, output: str) -> str:
    parts = [f"--- snakemake output (tail)\n{output[-6000:]}"]
    for path in sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))[-8:]:
        parts.append(f"--- {path.relative_to(work)}\n{_tail(path, 30)}")
    for path in sorted((work / "logs").rglob("*.log"))[-4:] if (work / "logs").exists() else []:
        parts.append(f"--- {path.relative_to(work)}\n{_tail(path, 20)}")
    for name in ("slurmctld.log", "slurmd.log", "slurmdbd.log"):
        parts.append(f"--- {name}\n{_tail(scratch / 'log' / name, 20)}")
    queue = subprocess.run(["squeue", "-t", "all"], capture_output=True, text=True, timeout=30)
    parts.append(f"--- squeue -t all\n{queue.stdout}{queue.stderr}")
    return "\n".join(parts)


def _run_with_deadline(cmd: list[str], cwd: Path, env: dict, timeout: int) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; kill the whole group when the deadline passes."""
    log = cwd / "snakemake_slurm.out"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fh,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # snakemake cancels its Slurm jobs on SIGTERM
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = 124
    return rc, log.read_text(errors="replace")


@pytest.mark.slurm
def test_tiny_workflow_on_slurm_matches_local(slurm_cluster, tiny_run, tmp_path):
    scratch = slurm_cluster
    # The local run's own copy of the code: the repository may have changed since (while
    # developing), and the comparison is about where the jobs ran, not about code versions.
    if SCOPE == "chain":
        work = copy_run(tiny_run, tmp_path / "repo", SEED)
    else:
        work = _copy_workflow(tiny_run, tmp_path / "repo")
    env = {
        k: v
        for k, v in snakemake_env(slurm=True).items()
        if not k.startswith(("SLURM_", "SBATCH_"))
    }
    # the profile reads account and partition from Slurm's own variables
    env.update(SBATCH_ACCOUNT="ci", SBATCH_PARTITION="debug")

    targets = CHAIN if SCOPE == "chain" else []  # targets first: --configfile takes the rest
    plan = job_counts(snakemake(work, *targets, "-n", "--configfile", "config/test.yaml").stdout)
    if SCOPE == "chain":  # the copied data and model are up to date: only the chain runs
        assert plan == CHAIN_JOBS, plan

    cmd = [
        str(BIN / "snakemake"), *targets, "--workflow-profile", "workflow/profiles/slurm",
        "--configfile", "config/test.yaml",
        "--jobs", str(max(2, os.cpu_count() or 2)),  # the profile's 100 is for a real cluster
        "--max-threads", str(MAX_THREADS),
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
    ]  # fmt: skip
    t0 = time.monotonic()
    rc, output = _run_with_deadline(cmd, work, env, RUN_TIMEOUT)
    print(f"Slurm run: rc {rc} in {time.monotonic() - t0:.0f} s, {sum(plan.values())} jobs planned")
    if rc != 0:
        pytest.fail(
            ("timed out" if rc == 124 else f"failed (rc {rc})")
            + f": {' '.join(cmd)}\n{_diagnostics(work, scratch, output)}"
        )

    # -- every planned job ran as one completed Slurm job (local jobs: `rule all` and localrules)
    match = re.search(r"SLURM run ID: (\S+)", output)
    assert match, output[-3000:]
    local = Counter(re.findall(r"^localrule (\w+):", output, flags=re.MULTILINE))
    submitted = Counter(re.findall(r"^rule (\w+):", output, flags=re.MULTILINE))
    assert submitted + local == plan, (plan, submitted, local)
    assert set(local) <= {"all"}, f"rules run outside Slurm: {local}"
    rows = _sacct(match.group(1))
    assert Counter(_rule(r["Comment"]) for r in rows) == submitted, rows
    assert {r["State"] for r in rows} == {"COMPLETED"}, rows
    assert {(r["Account"], r["Partition"]) for r in rows} == {("ci", "debug")}, rows
    logs = {p.stem for p in (work / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert {r["JobIDRaw"] for r in rows} <= logs, "a Slurm job left no jobstep log"

    # -- the config's per-rule requests (first attempt) reached sbatch
    for row in rows:
        rule = _rule(row["Comment"])
        wanted = _wanted(work, rule)
        assert row["ReqMem"] == f"{wanted['mem_mb']}M", (rule, row)
        assert _minutes(row["Timelimit"]) == wanted["runtime"], (rule, row)
        assert int(row["ReqCPUS"]) == min(wanted["cpus"], MAX_THREADS), (rule, row)
        assert ("gres/gpu=1" in row["ReqTRES"]) == bool(wanted["gpu"]), (rule, row)

    # -- the same tables as the local run, byte for byte
    def tables(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for d in TABLE_DIRS
            for p in sorted((root / d).rglob("*.tsv"))
        }

    on_slurm, locally = tables(work), tables(tiny_run)
    if SCOPE == "chain":  # the chain's targets and the tables on the way (and the copied one)
        assert set(CHAIN) <= set(on_slurm) <= set(locally), sorted(on_slurm)
    else:
        assert sorted(on_slurm) == sorted(locally)
    differ = [name for name in on_slurm if on_slurm[name] != locally[name]]
    assert not differ, f"tables that differ between the Slurm and the local run: {differ}"
