"""Filters, feature maps, the filter bank and the run figures: real inputs, images of the right size."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab
from cnnlab import nn, viz
from tests.viz.conftest import expected_size, png_size


def _check_png(fig, path):
    assert path.stat().st_size > 2000
    assert png_size(path) == expected_size(fig)
    from PIL import Image

    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 5  # something was drawn, not a blank page


def test_layer_outputs_follow_the_model(image_model, photo):
    records = viz.layer_outputs(image_model, photo)
    assert [r.name for r in records] == [str(i) for i in range(7)]
    assert records[0].input.shape == (1, 80, 64)
    assert records[0].output.shape == (4, 80, 64) and records[0].is_conv
    assert records[2].output.shape == (4, 40, 32)
    with cnnlab.no_grad():
        direct = image_model(cnnlab.Tensor(photo[None, None].astype(np.float32))).data[0]
    assert np.allclose(records[-1].output, direct)


def test_layer_outputs_reject_a_batch(image_model, photo):
    with pytest.raises(ValueError, match="one example"):
        viz.layer_outputs(image_model, np.stack([photo[None], photo[None]]))


@pytest.mark.parametrize("layer", [None, 1])
def test_filters_grid(tmp_path, image_model, layer):
    path = tmp_path / "filters.png"
    fig = viz.plot_filters(image_model, path, layer=layer)
    _check_png(fig, path)


def test_filters_of_a_weight_array_svg(tmp_path):
    path = tmp_path / "filters.svg"
    viz.plot_filters(np.random.default_rng(0).normal(size=(6, 1, 5, 5)), path)
    assert path.read_text().lstrip().startswith("<?xml")


def test_filters_errors(image_model):
    with pytest.raises(ValueError, match=r"layer must be an int in \[0, 1\]"):
        viz.plot_filters(image_model, layer=5)
    with pytest.raises(ValueError, match="no Conv1d or Conv2d"):
        viz.plot_filters(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_feature_maps_of_an_image(tmp_path, image_model, photo):
    path = tmp_path / "maps.png"
    _check_png(viz.plot_feature_maps(image_model, photo, path), path)


def test_feature_maps_of_a_signal(tmp_path, signals):
    from cnnlab import nn

    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 5, 5, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 19, 10))
    path = tmp_path / "maps1d.png"
    _check_png(viz.plot_feature_maps(model, signals[0][0], path), path)
    path = tmp_path / "filters1d.png"
    _check_png(viz.plot_filters(model, path), path)


def test_filter_bank_with_learned_filters(tmp_path, image_model, photo):
    path = tmp_path / "bank.png"
    _check_png(viz.plot_filter_bank(photo, image_model, path), path)
    assert set(viz.CLASSIC_FILTERS) == {"vertical edges", "horizontal edges", "blur", "sharpen", "Laplacian"}
    assert viz.CLASSIC_FILTERS["blur"].sum() == pytest.approx(1.0)
    assert viz.CLASSIC_FILTERS["Laplacian"].sum() == 0


def test_filter_bank_needs_a_grey_conv2d(photo, signals):
    model = nn.Sequential(nn.Conv2d(3, 2, 3))
    with pytest.raises(ValueError, match="Conv2d on 1 channel"):
        viz.plot_filter_bank(photo, model)


def _write_run(folder, epochs=5):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.5 + e / 20, "val_loss": 2.2 / e,
                         "val_acc": 0.45 + e / 20, "lr": 0.01 / e, "seconds": 0.1}) for e in range(1, epochs + 1)]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"epoch": 6, "train_lo')  # torn last line
    return folder


def test_training_curves_from_a_run_folder(tmp_path):
    run = _write_run(tmp_path / "run")
    assert [r["epoch"] for r in viz.read_metrics(run)] == [1, 2, 3, 4, 5]
    path = tmp_path / "curves.png"
    _check_png(viz.plot_training_curves(run, path), path)


def test_training_curves_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        viz.read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no completed epoch"):
        viz.plot_training_curves(tmp_path)


def test_confusion_matrix(tmp_path):
    cm = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    path = tmp_path / "cm.png"
    _check_png(viz.plot_confusion_matrix(cm, ["a", "b", "c"], path), path)
    with pytest.raises(ValueError, match="must be square"):
        viz.plot_confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="2 class names for a 3 x 3"):
        viz.plot_confusion_matrix(cm, ["a", "b"])


def test_most_wrong_ranks_confident_mistakes_first():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.55, 0.45]])
    assert viz.most_wrong(p, np.array([1, 1, 1, 0])).tolist() == [0, 2]
    with pytest.raises(ValueError, match="4 class indices"):
        viz.most_wrong(p, np.array([1, 1]))


def test_most_wrong_grids(tmp_path, signals):
    x, y = signals
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=len(y))
    path = tmp_path / "wrong1d.png"
    _check_png(viz.plot_most_wrong(x, y, p, path=path, count=9), path)
    images = rng.random((len(y), 1, 28, 28))
    path = tmp_path / "wrong.png"
    _check_png(viz.plot_most_wrong(images, y, p, [f"c{k}" for k in range(10)], path), path)


def test_write_run_figures(tmp_path, signals):
    x, y = signals
    run = _write_run(tmp_path / "run")
    p = np.eye(10)[(y + (np.arange(len(y)) % 3 == 0)) % 10] * 0.9 + 0.01
    written = viz.write_run_figures(run, probabilities=p, targets=y, x=x)
    assert [w.name for w in written] == ["curves.png", "confusion.png", "most_wrong.png"]
    assert all(w.stat().st_size > 2000 for w in written)
    assert viz.write_run_figures(run) == [run / "curves.png"]
