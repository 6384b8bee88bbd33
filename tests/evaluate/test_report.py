"""python -m pav.evaluate.report: finished runs' figures, validation and test side by side."""

import json

import pytest

from pav.evaluate.report import main


def _metrics(psnr: float, val: float | None) -> dict:
    scores = {"per_appearance": {"a": {"psnr": psnr - 1, "ssim": 0.9, "views": 4},
                                 "b": {"psnr": psnr + 1, "ssim": 0.9, "views": 4}},
              "mean": {"psnr": psnr, "ssim": 0.9}}
    validation = None if val is None else {"per_appearance": {}, "mean": {"psnr": val, "ssim": 0.8}}
    return {**scores, "validation": validation, "steps": 100, "train_minutes": 2.5, "fit_wall_minutes_this_run": 2.5,
            "parameters": 10, "checkpoint_mb": 1.0, "model": "pav", "data": "synthetic"}


def test_several_runs_get_one_row_each_with_validation_beside_test(tmp_path, capsys):
    for name, psnr, val in (("seed0", 27.0, 26.5), ("old", 25.0, None)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(_metrics(psnr, val)))
    main([str(tmp_path / "seed0"), str(tmp_path / "old")])
    out = capsys.readouterr().out
    assert "validation frames (what defaults are chosen on): PSNR 26.50" in out
    assert f"| {tmp_path / 'seed0'} | 26.50 / 0.800 | 27.00 / 0.900 | 26.00, 28.00 | 100 | 2.5 |" in out
    assert f"| {tmp_path / 'old'} | — | 25.00 / 0.900 |" in out  # a run from before validation existed
    with pytest.raises(SystemExit, match="missing; has the run"):
        main([str(tmp_path / "none")])
