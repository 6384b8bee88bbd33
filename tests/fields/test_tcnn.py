"""backend='tcnn' where tiny-cuda-nn cannot run: clear errors, never a raw OSError or a half-built model."""

import builtins

import pytest
import torch

from pav.fields.encoding import HashGrid
from pav.train.checkpoint import load_avatar


@pytest.fixture
def tinycudann_without_driver(monkeypatch):
    """tinycudann installed on a machine without a GPU driver: importing it raises OSError."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tinycudann":
            raise OSError("libcuda.so.1: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_tcnn_without_a_driver_says_so(tinycudann_without_driver):
    with pytest.raises(RuntimeError, match="tinycudann on a CUDA GPU.*libcuda.so.1"):
        HashGrid(backend="tcnn")


def test_tcnn_feature_counts_are_checked_first():
    with pytest.raises(ValueError, match=r"\(1, 2, 4, 8\) features per level, got n_features=3"):
        HashGrid(n_features=3, backend="tcnn")


def test_a_tcnn_checkpoint_on_a_cpu_gets_a_clear_error(tiny_avatar, tmp_path, tinycudann_without_driver):
    ckpt = torch.load(tiny_avatar.ckpt, map_location="cpu", weights_only=False)
    ckpt["pav"]["config"]["model"]["hashgrid_backend"] = "tcnn"
    path = tmp_path / "tcnn.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=r"tcnn.ckpt: trained with model.hashgrid_backend=tcnn.*libcuda"):
        load_avatar(path)
