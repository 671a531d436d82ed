import numpy as np
import pytest
import torch

from ibprune_lib import data as data_module
from ibprune_lib.data import (
    DatasetNotFoundError,
    ImageData,
    augment,
    calibration_batch,
    hold_out_validation,
    load_cifar,
    normalise,
)


def test_cifar10_is_the_real_dataset(cifar10):
    assert cifar10.x_train.shape == (50000, 3, 32, 32) and cifar10.x_train.dtype == torch.uint8
    assert cifar10.x_test.shape == (10000, 3, 32, 32)
    assert torch.bincount(cifar10.y_train).tolist() == [5000] * 10
    assert torch.bincount(cifar10.y_test).tolist() == [1000] * 10
    mean = cifar10.x_train.float().mean((0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-4)


def test_missing_dataset_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "cifar10.npz")) as error:
        load_cifar("cifar10", tmp_path)
    assert "IBPRUNE_DATA" in str(error.value) and "download" in str(error.value)


def test_malformed_dataset_is_an_error_not_a_fallback(tmp_path):
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((4, 32, 32)), y_train=np.zeros(4))
    with pytest.raises(DatasetNotFoundError, match="malformed"):
        load_cifar("cifar10", tmp_path)
    images = np.zeros((4, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "cifar10.npz", x_train=images, y_train=np.array([0, 1, 2, 11]), x_test=images,
             y_test=np.zeros(4, np.int64))
    with pytest.raises(DatasetNotFoundError, match="labels in"):
        load_cifar("cifar10", tmp_path)


def test_cifar100_shaped_file_loads_with_100_classes(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (200, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(200) % 100
    np.savez(tmp_path / "cifar100.npz", x_train=images, y_train=labels, x_test=images[:100], y_test=labels[:100])
    data = load_cifar("cifar100", tmp_path)
    assert data.num_classes == 100 and data.x_train.shape == (200, 3, 32, 32)
    assert torch.equal(data.x_train[7].permute(1, 2, 0), torch.from_numpy(images[7]))


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_cifar("mnist")


def test_augment_is_a_padded_crop_or_its_mirror():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32) + 1
    out = augment(images, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for i in range(2):
        windows = [padded[i, :, y : y + 32, x : x + 32] for y in range(9) for x in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    again = augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_normalise_uses_the_models_statistics():
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(normalise(white, "resnet56")[0, :, 0, 0], expected)


def test_calibration_batch_is_seeded_and_balanced(cifar10):
    x1, y1 = calibration_batch(cifar10.x_train, cifar10.y_train, 128, seed=3, class_balanced=True)
    x2, _ = calibration_batch(cifar10.x_train, cifar10.y_train, 128, seed=3, class_balanced=True)
    assert torch.equal(x1, x2) and x1.shape == (128, 3, 32, 32)
    assert sorted(torch.bincount(y1).tolist()) == [12] * 2 + [13] * 8
    x3, _ = calibration_batch(cifar10.x_train, cifar10.y_train, 128, seed=4)
    assert not torch.equal(x1, x3)
    with pytest.raises(ValueError, match="batch_size"):
        calibration_batch(cifar10.x_train, cifar10.y_train, 0)


def _jpeg_archive(path, per_class=2, classes=("apple", "zebra", "maple_tree")):
    """A CIFAR-100-like tar.gz of JPEGs (train/<name>/*.jpg, test/<name>/*.jpg); returns its colours by split."""
    import io
    import tarfile

    from PIL import Image

    colours = {}
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for c, name in enumerate(classes):
                for i in range(per_class):
                    colour = (40 * c + 20, 10 * i + 5, 200)
                    colours[split, name, i] = colour
                    buffer = io.BytesIO()
                    Image.new("RGB", (32, 32), colour).save(buffer, "JPEG", quality=75)
                    info = tarfile.TarInfo(f"{split}/{name}/img_{i:02d}.jpg")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)
    return colours


@pytest.fixture
def tiny_cifar100_sizes(monkeypatch):
    """A three-class archive stands in for CIFAR-100: 6 training and 6 test images."""
    monkeypatch.setitem(data_module._CIFAR_SIZES, "cifar100", (6, 6))


def test_cifar100_jpeg_archive_decodes_in_label_name_order_and_is_cached(tmp_path, tiny_cifar100_sizes, capfd):
    colours = _jpeg_archive(tmp_path / "cifar100-jpg.tar.gz")
    data = load_cifar("cifar100", tmp_path)
    assert capfd.readouterr().err == ""  # no progress bar where stderr is no terminal (a notebook's fails the book)
    assert data.lossy and data.label == "CIFAR-100 (JPEG copy)" and data.x_train.shape == (6, 3, 32, 32)
    assert data.y_train.tolist() == [0, 0, 1, 1, 2, 2]  # apple, maple_tree, zebra: sorted names
    pixel = data.x_test[3, :, 16, 16].tolist()  # maple_tree, second image
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, colours["test", "maple_tree", 1]))  # JPEG: near
    cache = tmp_path / "cifar100-jpg.npz"
    assert cache.is_file()
    (tmp_path / "cifar100-jpg.tar.gz").touch()  # same bytes: the cache still answers
    again = load_cifar("cifar100", tmp_path)
    assert torch.equal(again.x_train, data.x_train) and again.lossy


def test_cifar100_cache_goes_to_the_user_cache_when_the_data_folder_is_read_only(tmp_path, monkeypatch,
                                                                                   tiny_cifar100_sizes):
    folder = tmp_path / "shared"
    folder.mkdir()
    _jpeg_archive(folder / "cifar100-jpg.tar.gz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder.chmod(0o555)  # no write bits: read-only even for root (CI's copy of shared/ is laid out so)
    try:
        load_cifar("cifar100", folder)
    finally:
        folder.chmod(0o755)
    assert (tmp_path / "cache" / "ibprune" / "cifar100-jpg.npz").is_file()
    assert not (folder / "cifar100-jpg.npz").exists()


@pytest.mark.parametrize("damage", ["truncated", "missing images"])
def test_a_damaged_cifar100_archive_is_a_clear_error_and_leaves_no_cache(tmp_path, tiny_cifar100_sizes, damage):
    archive = tmp_path / "cifar100-jpg.tar.gz"
    _jpeg_archive(archive, per_class=2 if damage == "truncated" else 1)
    if damage == "truncated":
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetNotFoundError, match="damaged|complete copy"):
        load_cifar("cifar100", tmp_path)
    assert not (tmp_path / "cifar100-jpg.npz").exists()


def test_a_validation_split_is_class_balanced_disjoint_and_the_same_every_time():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(40)
    images = torch.randint(0, 256, (400, 3, 4, 4), dtype=torch.uint8, generator=g)
    images[:, 0, 0, 0] = torch.arange(400) % 256  # with [0, 0, 1]: an image's index, to tell them apart
    images[:, 0, 0, 1] = torch.arange(400) // 256
    data = ImageData("cifar10", images, labels, images[:5], labels[:5], "test")
    rest, x_val, y_val = hold_out_validation(data, 100)
    assert torch.bincount(y_val).tolist() == [10] * 10 and len(rest.x_train) == 300
    index = lambda x: (x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist()  # noqa: E731
    assert not set(index(x_val)) & set(index(rest.x_train)) and len(set(index(x_val))) == 100
    assert torch.equal(rest.y_train, labels[sorted(index(rest.x_train))])  # labels travel with their images
    again = hold_out_validation(data, 100)[1]
    assert torch.equal(again, x_val) and not torch.equal(hold_out_validation(data, 100, seed=1)[1], x_val)
    for n in (0, 105, 210):
        with pytest.raises(ValueError, match="validation must be a positive multiple of the 10 classes, at most 200"):
            hold_out_validation(data, n)
