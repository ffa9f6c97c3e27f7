"""tools/prefetch_weights.py: the names it would fetch, and that a dry run never fetches."""

from __future__ import annotations

import csv
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import timm

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "prefetch_weights.py"
PAPER_SHEETS = sorted((ROOT / "config" / "paper").glob("*_models.tsv"))
HEADER = "model_id\tarchitecture\tweights\ttag\tcheckpoint\tinput_size\tfamily\tobjective\tkwargs"


def _load_tool():
    spec = importlib.util.spec_from_file_location("prefetch_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prefetch = _load_tool()


def _expected_hub_names(sheet: Path) -> list[str]:
    """Independent reading of a sheet: architecture.tag of every hub row, first-seen order."""
    with sheet.open(newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    rows = csv.DictReader(lines, delimiter="\t")
    names = [f"{r['architecture']}.{r['tag']}" for r in rows if r["weights"] == "hub"]
    return list(dict.fromkeys(names))


def _expected_urls(sheet: Path) -> list[str]:
    """URLs (fragment cut) of the sheet's checkpoint rows that name one, first-seen order."""
    with sheet.open(newline="") as f:
        rows = list(csv.DictReader([ln for ln in f if not ln.startswith("#")], delimiter="\t"))
    cells = [r["checkpoint"] for r in rows if r["weights"] == "checkpoint"]
    return list(dict.fromkeys(c.split("#")[0] for c in cells if c.startswith("https://")))


def _expected_hf(sheet: Path) -> list[str]:
    """id@revision of every hf row (Hugging Face models), first-seen order."""
    with sheet.open(newline="") as f:
        rows = list(csv.DictReader([ln for ln in f if not ln.startswith("#")], delimiter="\t"))
    names = [f"{r['architecture']}@{r['tag']}" for r in rows if r["weights"] == "hf"]
    return list(dict.fromkeys(names))


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or model creation fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not open a connection or build a model")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(timm, "create_model", refuse)


def _write_sheet(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_every_paper_config_has_a_sheet():
    configs = sorted((ROOT / "config" / "paper").glob("*.yaml"))
    assert len(configs) == 5
    assert {c.stem + "_models.tsv" for c in configs} == {s.name for s in PAPER_SHEETS}


@pytest.mark.parametrize("sheet", PAPER_SHEETS, ids=lambda p: p.name)
def test_dry_run_prints_known_tagged_names(sheet, capsys, no_network):
    assert prefetch.main(["--dry-run", str(sheet)]) == 0
    printed = capsys.readouterr().out.split()
    hub = _expected_hub_names(sheet)
    # hub names, then checkpoint URLs, then Hugging Face id@revision
    assert printed == hub + _expected_urls(sheet) + _expected_hf(sheet)
    known = set(timm.list_pretrained())
    for name in hub:
        architecture, _, tag = name.partition(".")
        assert tag, f"{name} has no pinned tag"
        assert timm.is_model(architecture), name
        assert name in known, f"timm {timm.__version__} has no pretrained {name}"


def test_paper_sheets_name_hub_weights_except_the_zoo_study():
    counts = {s.name: len(_expected_hub_names(s)) for s in PAPER_SHEETS}
    assert counts["uniformity_models.tsv"] == 0  # trained by the pipeline itself
    assert all(n > 0 for name, n in counts.items() if name != "uniformity_models.tsv")


def test_config_argument_reads_its_models_sheet(tmp_path, capsys, no_network, monkeypatch):
    sheet = _write_sheet(tmp_path / "m.tsv", ["a\tvit_small_patch16_224\thub\tdino\t\t224\t\t\t"])
    config = tmp_path / "c.yaml"
    config.write_text("models: m.tsv\nseed: 0\n")
    monkeypatch.chdir(tmp_path)  # the workflow resolves `models` from the working directory
    assert prefetch.main(["--dry-run", str(config)]) == 0
    assert capsys.readouterr().out.split() == ["vit_small_patch16_224.dino"]
    assert prefetch.main(["--dry-run", str(sheet), str(config)]) == 0  # duplicates printed once
    assert capsys.readouterr().out.split() == ["vit_small_patch16_224.dino"]


def test_fetch_creates_hub_rows_only_with_the_pipelines_arguments(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"")
    sheet = _write_sheet(
        tmp_path / "m.tsv",
        [
            "a\tvit_small_patch14_dinov2\thub\tlvd142m\t\t224\t\t\t" + '{"img_size": 224}',
            "b\tresnet18\tzoo\t\t\t32\t\tsimclr\t",
            "c\tresnet18\trandom\t\t\t32\t\trandom\t",
            f"d\tresnet50\tcheckpoint\t\t{ckpt}\t224\t\t\t",
            "e\tresnet50\thub\ttv_in1k\t\t224\t\t\t",
        ],
    )
    calls = []
    monkeypatch.setattr(timm, "create_model", lambda name, **kw: calls.append((name, kw)))
    assert prefetch.main([str(sheet)]) == 0
    assert calls == [
        (
            "vit_small_patch14_dinov2.lvd142m",
            {"pretrained": True, "num_classes": 0, "img_size": 224},
        ),
        ("resnet50.tv_in1k", {"pretrained": True, "num_classes": 0}),
    ]
    assert capsys.readouterr().out.split() == [
        "vit_small_patch14_dinov2.lvd142m",
        "resnet50.tv_in1k",
    ]


def test_failed_download_is_reported_and_the_rest_fetched(tmp_path, capsys, monkeypatch):
    sheet = _write_sheet(
        tmp_path / "m.tsv",
        [
            "a\tresnet50\thub\ttv_in1k\t\t224\t\t\t",
            "b\tvit_base_patch16_224\thub\tdino\t\t224\t\t\t",
        ],
    )
    calls = []

    def create(name, **kw):
        calls.append(name)
        if name == "resnet50.tv_in1k":
            raise OSError("offline")

    monkeypatch.setattr(timm, "create_model", create)
    assert prefetch.main([str(sheet)]) == 1
    assert calls == ["resnet50.tv_in1k", "vit_base_patch16_224.dino"]
    captured = capsys.readouterr()
    assert captured.out.split() == ["vit_base_patch16_224.dino"]
    assert "FAILED resnet50.tv_in1k" in captured.err


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a\tresnet50\thub\tno_such_tag\t\t224\t\t\t", "no pretrained weights named"),
        ("a\tresnet50\thub\t\t\t224\t\t\t", "needs a pinned 'tag'"),
        ("a\tresnet50\thub\ttv_in1k\t\t224\t\t\t[1, 2]", "not a JSON object"),
    ],
    ids=["unknown_tag", "missing_tag", "kwargs_not_object"],
)
def test_bad_rows_stop_before_any_download(tmp_path, capsys, no_network, row, message):
    sheet = _write_sheet(tmp_path / "m.tsv", ["b\tresnet50\thub\ttv_in1k\t\t224\t\t\t", row])
    assert prefetch.main([str(sheet)]) == 2
    assert message in capsys.readouterr().err


def test_missing_sheet_is_an_error(tmp_path, capsys):
    assert prefetch.main(["--dry-run", str(tmp_path / "absent.tsv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_command_line_dry_run_offline():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", *map(str, PAPER_SHEETS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    expected = list(dict.fromkeys(n for s in PAPER_SHEETS for n in _expected_hub_names(s)))
    urls = list(dict.fromkeys(u for s in PAPER_SHEETS for u in _expected_urls(s)))
    hf = list(dict.fromkeys(m for s in PAPER_SHEETS for m in _expected_hf(s)))
    assert proc.stdout.split() == expected + urls + hf


def test_hf_rows_are_snapshot_downloaded_at_their_revision(tmp_path, capsys, monkeypatch):
    import huggingface_hub

    local = tmp_path / "local_model"
    local.mkdir()
    sheet = _write_sheet(
        tmp_path / "m.tsv",
        [
            "a\tfacebook/data2vec-vision-base\thf\tmain\t\t224\t\t\t",
            "b\tmicrosoft/beit-base-patch16-224\thf\t" + "0" * 40 + "\t\t224\t\t\t",
            f"c\t{local}\thf\t\t\t32\t\t\t",  # a local folder needs nothing
            "d\tfacebook/data2vec-vision-base\thf\tmain\t\t224\t\t\t",  # printed once
        ],
    )
    calls = []

    def download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision))
        assert "*.safetensors" in allow_patterns and "*.json" in allow_patterns
        if revision != "main":
            raise OSError("no such revision")
        return str(tmp_path / "hub" / "snapshots" / ("ab" * 20))  # main's commit

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    assert prefetch.main([str(sheet)]) == 1
    assert calls == [
        ("facebook/data2vec-vision-base", "main"),
        ("microsoft/beit-base-patch16-224", "0" * 40),
    ]
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "facebook/data2vec-vision-base@main"
    assert f"main is commit {'ab' * 20}" in lines[1] and len(lines) == 2
    assert "FAILED microsoft/beit-base-patch16-224@" in captured.err


def test_hf_dry_run_lists_without_network(tmp_path, capsys, no_network, monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not download")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    sheet = _write_sheet(
        tmp_path / "m.tsv",
        ["a\tresnet50\thub\ttv_in1k\t\t224\t\t\t", "b\torg/model\thf\tv1.0\t\t224\t\t\t"],
    )
    assert prefetch.main(["--dry-run", str(sheet)]) == 0
    assert capsys.readouterr().out.split() == ["resnet50.tv_in1k", "org/model@v1.0"]
    _write_sheet(sheet, ["b\torg/model\thf\t\t\t224\t\t\t"])
    assert prefetch.main([str(sheet)]) == 2
    assert "needs a pinned revision" in capsys.readouterr().err
