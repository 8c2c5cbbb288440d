import gzip
import struct

import numpy as np
import pytest
import torch

from tests.mnist_fixtures import make_images, write_mnist
from trainer import data
from trainer.data import FILES, DataError


def test_raw_and_gz_files_read_the_same(tmp_path):
    raw = data.load(write_mnist(tmp_path / "raw"), torch.device("cpu"), download=False)
    gz = data.load(write_mnist(tmp_path / "gz", gz=True), torch.device("cpu"), download=False)
    assert torch.equal(raw.train.images, gz.train.images) and torch.equal(raw.test.labels, gz.test.labels)
    images, labels = make_images(320, 0)
    assert raw.train.labels.tolist() == labels.tolist()
    assert raw.train.images.shape == (320, 1, 28, 28)


def test_data_is_normalized_once_with_training_statistics(tmp_path):
    d = data.load(write_mnist(tmp_path), torch.device("cpu"), download=False)
    assert abs(float(d.train.images.mean())) < 1e-4 and abs(float(d.train.images.std()) - 1) < 1e-3


def test_torchvision_raw_folder_is_found(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw")
    assert len(data.load(tmp_path, torch.device("cpu"), download=False).test) == 120


def test_truncated_gz_names_the_file(tmp_path):
    folder = write_mnist(tmp_path, gz=True)
    path = folder / (FILES[("train", "images")] + ".gz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=f"{path.name}: cannot read"):
        data.load(folder, torch.device("cpu"), download=False)


def test_truncated_raw_file_names_the_file(tmp_path):
    folder = write_mnist(tmp_path)
    path = folder / FILES[("test", "images")]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=f"{path.name}: truncated or corrupt"):
        data.load(folder, torch.device("cpu"), download=False)


def test_wrong_magic_is_refused(tmp_path):
    folder = write_mnist(tmp_path)
    path = folder / FILES[("train", "labels")]
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="bad header"):
        data.load(folder, torch.device("cpu"), download=False)


def test_label_count_must_match_images(tmp_path):
    folder = write_mnist(tmp_path)
    data.write_idx(folder / FILES[("train", "labels")], np.zeros(10, np.uint8))
    with pytest.raises(DataError, match="10 labels for 320 images"):
        data.load(folder, torch.device("cpu"), download=False)


def test_partly_missing_files_are_listed(tmp_path):
    folder = write_mnist(tmp_path)
    (folder / FILES[("test", "labels")]).unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        data.load(folder, torch.device("cpu"))


def test_no_files_and_failed_download_says_where_to_put_them(tmp_path, monkeypatch):
    def offline(folder):
        raise OSError("no network")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError, match=r"download failed.*put train-images-idx3-ubyte.gz"):
        data.load(tmp_path, torch.device("cpu"))


def test_download_is_used_only_when_nothing_is_there(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "_download", lambda folder: calls.append(folder) or write_mnist(folder / "MNIST" / "raw"))
    data.load(tmp_path / "empty", torch.device("cpu"))
    data.load(write_mnist(tmp_path / "full"), torch.device("cpu"))
    assert calls == [tmp_path / "empty"]


def test_idx_files_follow_the_published_format(tmp_path):
    """IDX as LeCun's page defines it (a big-endian magic 0x0803 or 0x0801, then each dimension as a big-endian
    32-bit count, then the bytes), checked both ways against hand-built bytes and torchvision's own reader."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    images = np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28).astype(np.uint8)
    by_hand = struct.pack(">IIII", 0x0803, 2, 28, 28) + images.tobytes()
    (tmp_path / "hand").write_bytes(by_hand)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "hand", "images"), images)
    data.write_idx(tmp_path / "ours.gz", images)
    assert gzip.decompress((tmp_path / "ours.gz").read_bytes()) == by_hand
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    data.write_idx(tmp_path / "labels", labels)
    assert (tmp_path / "labels").read_bytes() == struct.pack(">II", 0x0801, 5) + bytes([3, 1, 4, 1, 5])
    assert read_sn3_pascalvincent_tensor(str(tmp_path / "labels")).tolist() == [3, 1, 4, 1, 5]


def test_a_raw_and_a_gz_copy_that_differ_are_refused(tmp_path):
    folder = write_mnist(tmp_path, gz=True)
    stem = FILES[("train", "labels")]
    _, labels = make_images(320, 0)
    data.write_idx(folder / stem, labels)  # the same data uncompressed: fine
    assert data.load(folder, torch.device("cpu"), download=False).train.labels.tolist() == labels.tolist()
    data.write_idx(folder / stem, (labels + 1) % 10)  # a raw copy of other labels beside the .gz
    with pytest.raises(DataError, match=f"{stem} and .*{stem}.gz hold different data; remove the one that is wrong"):
        data.load(folder, torch.device("cpu"), download=False)


def test_an_empty_test_set_is_refused(tmp_path):
    folder = write_mnist(tmp_path, n_test=0)
    with pytest.raises(DataError, match=f"{FILES[('test', 'images')]}: no test images"):
        data.load(folder, torch.device("cpu"), download=False)


def test_shuffled_batches_cover_every_sample_once(tmp_path):
    d = data.load(write_mnist(tmp_path), torch.device("cpu"), download=False)
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in data.batches(d.train, 64, g)])
    assert sorted(seen.tolist()) == sorted(d.train.labels.tolist()) and len(seen) == 320
    assert not torch.equal(seen, d.train.labels)


def test_augmentation_without_rotation_or_shift_is_the_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 28, 28, generator=g)
    # float32 grid coordinates are off by ~1e-6 pixel, which moves values of size ~4 by up to ~2e-5
    torch.testing.assert_close(data.augment(x, 0.0, 0.0, g), x, atol=1e-4, rtol=0)


def test_augmentation_rotates_each_image_differently():
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 13:15, 2:26] = 1.0  # a horizontal bar
    out = data.augment(x, 20.0, 0.0, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], x[0])
