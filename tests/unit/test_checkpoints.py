"""Checkpoint URLs (cache, sha256, prefetch) and torchvision ResNet state dicts loaded into timm."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import timm
import torch
import torchvision

from repaudit.config import ConfigError, read_models
from repaudit.models import checkpoints
from repaudit.models.checkpoints import backbone_state, cache_path, fetch, resolve, split_url
from repaudit.models.factory import ModelSpec, load_backbone_state, load_encoder

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "models.schema.yaml"
HEADER = "model_id\tarchitecture\tweights\ttag\tcheckpoint\tinput_size\tfamily\tobjective\tkwargs"


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "prefetch_weights", ROOT / "tools" / "prefetch_weights.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ssl_resnet18(tmp_path):
    """A random torchvision resnet18 saved as an SSL release: under ``module.backbone.``, with
    its ``fc`` classifier and a projector beside the backbone. Returns (model, file, url)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a missed buffer would change features
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    state = {f"module.backbone.{k}": v for k, v in model.state_dict().items()}
    state["module.projector.0.weight"] = torch.randn(16, 512)
    path = tmp_path / "src" / "resnet18.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return model, path, path.as_uri()


def test_split_url_reads_the_sha256_fragment():
    digest = "ab" * 32
    assert split_url(f"https://h/x/r.pth#sha256={digest.upper()}") == ("https://h/x/r.pth", digest)
    assert split_url("file:///tmp/r.pth") == ("file:///tmp/r.pth", "")
    for bad in ("https://h/r.pth#sha256=abc", "https://h/r.pth#md5=" + digest, "ftp://h/r.pth"):
        with pytest.raises(ValueError, match="checkpoint URL"):
            split_url(bad)


def test_cache_path_keeps_apart_releases_with_one_file_name(tmp_path, monkeypatch):
    a = cache_path("https://a.org/barlow/resnet50.pth", tmp_path)
    b = cache_path("https://a.org/vicreg/resnet50.pth#sha256=" + "0" * 64, tmp_path)
    assert a.parent == b.parent == tmp_path and a != b
    assert a.name.endswith("-resnet50.pth") and b.name.endswith("-resnet50.pth")
    assert cache_path("https://a.org/vicreg/resnet50.pth", tmp_path) == b  # fragment ignored
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path / "env"))
    assert cache_path("https://a.org/x.pth").parent == tmp_path / "env"
    monkeypatch.delenv(checkpoints.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert checkpoints.cache_dir() == tmp_path / "xdg" / "repaudit" / "checkpoints"


def test_url_checkpoint_is_prefetched_verified_and_gives_torchvisions_features(
    ssl_resnet18, tmp_path, monkeypatch
):
    model, path, url = ssl_resnet18
    cell = f"{url}#sha256={_sha(path)}"
    cache = tmp_path / "cache"
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(cache))
    cached = fetch(cell)
    assert cached == cache_path(url) and cached.read_bytes() == path.read_bytes()
    assert resolve(cell) == (str(cached), _sha(path))
    path.unlink()  # loading reads the cache only

    spec = ModelSpec(
        model_id="r18",
        architecture="resnet18",
        weights="checkpoint",
        checkpoint=cell,
        input_size=32,
    )
    encoder, head = load_encoder(spec)
    assert head is None
    x = torch.rand(2, 3, 40, 40)
    model.fc = torch.nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(encoder.backbone(x), model(x), rtol=1e-5, atol=1e-5)


def test_dropped_keys_are_reported(ssl_resnet18, caplog):
    _, path, _ = ssl_resnet18
    state = torch.load(path, weights_only=True)
    target = timm.create_model("resnet18", num_classes=0)
    with caplog.at_level("INFO", logger="repaudit.models.factory"):
        dropped = load_backbone_state(target, state, source="r18.pth")
    assert sorted(dropped) == ["backbone.fc.bias", "backbone.fc.weight", "projector.0.weight"]
    assert "dropped 3 key(s)" in caplog.text and "projector.0.weight" in caplog.text


def test_missing_backbone_key_fails_naming_it(ssl_resnet18):
    _, path, _ = ssl_resnet18
    state = torch.load(path, weights_only=True)
    del state["module.backbone.layer4.1.conv2.weight"]
    with pytest.raises(ValueError, match=r"missing \['layer4.1.conv2.weight'\]") as err:
        load_backbone_state(timm.create_model("resnet18", num_classes=0), state, source="r18")
    assert "\n" not in str(err.value)


def test_torchvision_resnet50_keys_map_onto_timm_resnet50():
    tv = torchvision.models.resnet50(weights=None).state_dict()
    tv = {k: v for k, v in tv.items() if not k.endswith("num_batches_tracked")}  # some omit them
    own = timm.create_model("resnet50", num_classes=0).state_dict()
    state, dropped, missing, unexpected = backbone_state(
        {f"encoder.{k}": v for k, v in tv.items()}, own
    )
    assert (dropped, missing, unexpected) == (["encoder.fc.weight", "encoder.fc.bias"], [], [])
    assert {k: v.shape for k, v in state.items()} == {
        k: v.shape for k, v in own.items() if not k.endswith("num_batches_tracked")
    }


def test_missing_cache_file_says_to_prefetch(tmp_path):
    cell = "https://example.org/w/resnet50.pth#sha256=" + "1" * 64
    with pytest.raises(FileNotFoundError, match=r"prefetch_weights\.py") as err:
        resolve(cell, tmp_path)
    assert "\n" not in str(err.value)
    assert resolve(str(tmp_path / "local.pth")) == (str(tmp_path / "local.pth"), "")


def test_sha_mismatch_names_both_hashes_and_caches_nothing(ssl_resnet18, tmp_path):
    _, path, url = ssl_resnet18
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"expected {wrong}, got {_sha(path)}") as err:
        fetch(f"{url}#sha256={wrong}", tmp_path / "cache")
    assert "\n" not in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []  # no partial or unverified file left


def test_tampered_cache_file_fails_on_load(ssl_resnet18, tmp_path):
    _, path, url = ssl_resnet18
    cache = tmp_path / "cache"
    for cell in (f"{url}#sha256={_sha(path)}", url):  # pinned, and trusted on first use
        cached = fetch(cell, cache)
        assert resolve(cell, cache)[1] == _sha(path)
        data = cached.read_bytes()
        cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
        with pytest.raises(ValueError, match=f"expected {_sha(path)}, got {_sha(cached)}"):
            resolve(cell, cache)
        with pytest.raises(ValueError, match="sha256 mismatch"):
            fetch(cell, cache)  # a cached file is re-verified, not trusted
        cached.unlink()


def test_prefetch_tool_fetches_url_rows(ssl_resnet18, tmp_path, capsys, monkeypatch):
    _, path, url = ssl_resnet18
    prefetch = _load_tool()
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: pytest.fail("no hub rows here"))
    sheet = tmp_path / "m.tsv"
    rows = [
        f"a\tresnet18\tcheckpoint\t\t{url}#sha256={_sha(path)}\t32\t\t\t",
        f"b\tresnet18\tcheckpoint\t\t{url}\t32\t\t\t",  # same file, hash not pinned
        f"c\tresnet18\tcheckpoint\t\t{path}\t32\t\t\t",  # local: nothing to fetch
    ]
    sheet.write_text("\n".join(["# a comment line", HEADER, *rows]) + "\n")
    cache = tmp_path / "cache"
    assert prefetch.main(["--dry-run", str(sheet), "--cache-dir", str(cache)]) == 0
    assert capsys.readouterr().out.split() == [url]
    assert not cache.exists()
    assert prefetch.main([str(sheet), "--cache-dir", str(cache)]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [url, url]
    assert f"pin it as {url}#sha256={_sha(path)}" in captured.err
    assert cache_path(url, cache).read_bytes() == path.read_bytes()

    sheet.write_text("\n".join([HEADER, f"a\tresnet18\tcheckpoint\t\t{url}#sha256=1\t32\t\t\t"]))
    assert prefetch.main([str(sheet), "--cache-dir", str(cache)]) == 2
    assert "64 hex digits" in capsys.readouterr().err
    sheet.write_text(
        "\n".join([HEADER, f"a\tresnet18\tcheckpoint\t\t{url}#sha256={'2' * 64}\t32\t\t\t"])
    )
    cache_path(url, cache).unlink()
    assert prefetch.main([str(sheet), "--cache-dir", str(cache)]) == 1
    assert f"expected {'2' * 64}, got {_sha(path)}" in capsys.readouterr().err


def test_sheet_validation_accepts_urls_without_the_file(tmp_path):
    sheet = tmp_path / "m.tsv"
    url = "https://example.org/resnet50.pth#sha256=" + "a" * 64
    sheet.write_text(f"{HEADER}\nr50\tresnet50\tcheckpoint\t\t{url}\t224\t\t\t\n")
    assert read_models(sheet, SCHEMA).loc["r50", "checkpoint"] == url  # '#' inside a cell is data
    sheet.write_text(f"{HEADER}\nr50\tresnet50\tcheckpoint\t\t{url[:-1]}\t224\t\t\t\n")
    with pytest.raises(ConfigError, match=r"config error: .*'r50'.*64 hex digits"):
        read_models(sheet, SCHEMA)
