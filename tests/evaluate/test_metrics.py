"""Image metrics: closed forms, scikit-image agreement, FID behaviour, size checks, LPIPS/DISTS weights."""

import math

import pytest
import torch
from skimage.metrics import structural_similarity

from pav.metrics import MetricUnavailable, dists, fid, lpips, psnr, score_sets, ssim
from pav.metrics.backbones import alexnet_features
from pav.metrics.lpips import CHANNELS
from pav.metrics.weights import ALEXNET_FILE, LPIPS_HEADS_FILE, VGG16_FILE


def images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random images [n, size, size, 3]: low-frequency noise, like renders more than white noise is."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").permute(0, 2, 3, 1)


@pytest.fixture
def hub(tmp_path):
    """torch.hub's directory pointed at an empty folder for the test."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(before)


def test_psnr_is_the_closed_form():
    target = torch.full((8, 8, 3), 0.5)
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-5)  # MSE 0.01 -> 10 log10(1 / 0.01)
    a, b = images(1, 20, 0)[0], images(1, 20, 1)[0]
    assert psnr(a, b) == pytest.approx(-10 * math.log10(float(((a - b) ** 2).mean())), abs=1e-6)
    assert psnr(a, a) == math.inf


def test_ssim_agrees_with_scikit_image():
    a = images(1, 40, 2)[0]
    b = (a + 0.1 * torch.randn(a.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    reference = structural_similarity(b.numpy(), a.numpy(), channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)
    assert ssim(b, a) == pytest.approx(reference, abs=1e-3)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise():
    clean = images(5, 48, 4)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(clean.shape, generator=g)
    small, large = (clean + 0.005 * noise).clamp(0, 1), (clean + 0.04 * noise).clamp(0, 1)
    same = fid(clean, clean)
    assert abs(same) < 1e-3
    assert same < fid(small, clean) < fid(large, clean)


@pytest.mark.parametrize("metric", [psnr, ssim, lpips, dists])
def test_mismatched_sizes_are_refused_naming_both_shapes(metric):
    with pytest.raises(ValueError, match=r"prediction \(32, 32, 3\), truth \(32, 40, 3\)"):
        metric(torch.zeros(32, 32, 3), torch.zeros(32, 40, 3))


def test_fid_refuses_sets_of_different_image_sizes():
    with pytest.raises(ValueError, match=r"prediction \(2, 16, 16, 3\), truth \(2, 16, 20, 3\)"):
        fid(torch.zeros(2, 16, 16, 3), torch.zeros(2, 16, 20, 3))


def test_missing_backbones_are_unavailable_never_a_number(hub):
    a, b = images(2, 40, 6)
    with pytest.raises(MetricUnavailable, match=ALEXNET_FILE):
        lpips(a, b)
    with pytest.raises(MetricUnavailable, match=VGG16_FILE):
        dists(a, b)
    pred, truth = images(3, 40, 7), images(3, 40, 8)
    scores = score_sets({"one": (pred[:2], truth[:2]), "two": (pred[2:], truth[2:])})
    for row in (*scores["per_appearance"].values(), scores["overall"]):
        assert row["lpips"].startswith("unavailable: ") and ALEXNET_FILE in row["lpips"]
        assert row["dists"].startswith("unavailable: ") and VGG16_FILE in row["dists"]
        assert isinstance(row["psnr"], float) and isinstance(row["ssim"], float)
    assert isinstance(scores["per_appearance"]["one"]["fid"], float)
    assert scores["per_appearance"]["two"]["fid"] == "unavailable: fid needs at least 2 images per set, got 1"
    assert set(scores["unavailable"]) == {"lpips", "dists"}


def test_lpips_runs_with_weights_in_the_hub_cache(hub):
    """A state dict of the right keys and shapes (random values) in the hub folder: LPIPS runs."""
    folder = hub / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    backbone = {f"features.{k}": v for k, v in alexnet_features().state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # the classifier of a full AlexNet file is ignored
    torch.save(backbone, folder / ALEXNET_FILE)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(CHANNELS)},
               folder / LPIPS_HEADS_FILE)
    a, b = images(2, 64, 9)
    distance = lpips(a, b)
    assert math.isfinite(distance) and distance > 0
    assert lpips(a, a) == 0.0
    with pytest.raises(MetricUnavailable, match="at least 32 px"):
        lpips(a[:16, :16], b[:16, :16])


def test_a_wrong_weight_file_is_unavailable_naming_the_key(hub):
    folder = hub / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(1)}, folder / ALEXNET_FILE)
    with pytest.raises(MetricUnavailable, match="does not fit: missing keys"):
        lpips(*images(2, 40, 10))
