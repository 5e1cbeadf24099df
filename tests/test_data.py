import gzip
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lamaml.data import build_benchmark
from lamaml.data.benchmarks import permutations, rotation_angles, training_subsets
from lamaml.data import mnist as mnist_files
from lamaml.data.mnist import load_mnist, locate_mnist
from lamaml.data.transforms import apply_index_map, rotation_index_map, with_zero_pixel
from lamaml.errors import DataError

AUTHORS_SEED0_ANGLES = [7.5998, 15.8216, 21.7851, 29.3303, 40.6015, 48.6444, 61.0542, 65.7298, 76.2894,
                        86.2504, 98.1730, 103.5422, 110.5365, 123.8022, 131.5653, 137.2546, 152.1877,
                        161.8451, 169.2920, 179.1195]


def test_mnist_has_the_official_shapes_label_counts_and_mean(mnist):
    assert mnist.train_images.shape == (60000, 1, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 1, 28, 28) and mnist.train_labels.dtype == torch.int64
    assert mnist.classes == tuple("0123456789")
    assert torch.bincount(mnist.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.train_images.float().mean().item() / 255 == pytest.approx(0.1307, abs=1e-4)


def _copy_mnist(data_dir, tmp_path):
    shutil.copytree(data_dir / "mnist", tmp_path / "mnist")
    return tmp_path


def test_a_flipped_byte_in_a_gz_file_is_reported_with_its_and_the_official_sha256(data_dir, tmp_path):
    root = _copy_mnist(data_dir, tmp_path)
    target = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"t10k-labels-idx1-ubyte.gz is corrupt: its sha256 is "
                                        f"{hashlib.sha256(raw).hexdigest()}, the official t10k-labels-idx1-ubyte.gz's "
                                        f"is f7ae60f9.*, and it does not decompress .*delete it and download it again"):
        load_mnist(root)


def _official_content(data_dir, name):
    return gzip.decompress((data_dir / "mnist" / f"{name}.gz").read_bytes())


def test_unpacked_and_regzipped_copies_of_the_official_files_load_as_the_official_ones(data_dir, tmp_path, mnist):
    (tmp_path / "mnist").mkdir()
    # gunzip, then gzip -9 / -1 with another mtime: other bytes on disk, the same content
    for name, level in [("train-images-idx3-ubyte", None), ("train-labels-idx1-ubyte", 9),
                        ("t10k-images-idx3-ubyte", 1), ("t10k-labels-idx1-ubyte", None)]:
        content = _official_content(data_dir, name)
        if level is None:
            (tmp_path / "mnist" / name).write_bytes(content)
        else:
            packed = gzip.compress(content, compresslevel=level, mtime=1234567890)
            assert packed != (data_dir / "mnist" / f"{name}.gz").read_bytes()
            (tmp_path / "mnist" / f"{name}.gz").write_bytes(packed)
    loaded = load_mnist(tmp_path, allow_download=False)
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(loaded, key), getattr(mnist, key))


@pytest.mark.parametrize("packing", ["unpacked", "regzipped"])
def test_one_changed_pixel_byte_is_refused_naming_the_file_and_both_content_checksums(data_dir, tmp_path, packing):
    name = "t10k-images-idx3-ubyte"
    content = bytearray(_official_content(data_dir, name))
    expected = hashlib.sha256(content).hexdigest()
    content[16 + 784 * 5000 + 400] ^= 0x01          # one pixel of image 5000, one bit
    path = tmp_path / "mnist" / (name + (".gz" if packing == "regzipped" else ""))
    path.parent.mkdir()
    path.write_bytes(gzip.compress(bytes(content)) if packing == "regzipped" else bytes(content))
    for other in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "mnist" / f"{other}.gz").symlink_to(data_dir / "mnist" / f"{other}.gz")
    with pytest.raises(DataError) as caught:
        load_mnist(tmp_path, allow_download=False)
    message = str(caught.value)
    assert message.startswith(f"{path} is corrupt: its ") and "\n" not in message
    assert f"sha256 is {hashlib.sha256(content).hexdigest()}, the official content's is {expected}" in message
    assert ("decompressed content's sha256" in message) == (packing == "regzipped")
    assert message.endswith("delete it and download it again")


def test_a_gzip_bomb_is_stopped_at_the_official_size(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(50_000_000)))      # 50 MB of zeros for a 10 kB file
    with pytest.raises(DataError, match=r"holds more than the 10,008 bytes"):
        mnist_files.read_idx(path, "t10k-labels-idx1-ubyte")


def test_a_truncated_unpacked_idx_file_is_reported(data_dir, tmp_path):
    root = _copy_mnist(data_dir, tmp_path)
    packed = root / "mnist" / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(packed.read_bytes())
    packed.unlink()
    (root / "mnist" / "train-labels-idx1-ubyte").write_bytes(raw[:-7])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_mnist(root)


def test_a_file_with_the_wrong_magic_number_is_refused(data_dir, tmp_path):
    root = _copy_mnist(data_dir, tmp_path)
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    (root / "mnist" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(100))
    with pytest.raises(DataError, match="wrong magic number"):
        load_mnist(root)


def test_a_missing_folder_names_the_file_and_every_place_it_looked(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is missing: looked in ") as caught:
        load_mnist(root)
    assert f"looked in {root / 'mnist'}, {root} and {root / 'MNIST' / 'raw'} (for " in str(caught.value)


def test_files_in_torchvisions_mnist_raw_folder_are_found(data_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist_files.FILES:
        (raw / f"{name}.gz").symlink_to(data_dir / "mnist" / f"{name}.gz")
    assert locate_mnist(tmp_path, allow_download=False) == [raw / f"{name}.gz" for name in mnist_files.FILES]


class _DroppedConnection(io.BytesIO):
    def read(self, size=-1):
        if self.tell() >= 1000:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(size, 1000))


def _raise_after_creating_the_folder(urls, target, digest):
    target.parent.mkdir(parents=True)
    raise DataError(f"could not download {target.name} (no network)")


@pytest.mark.parametrize("failure", ["connection dropped mid-file", "download raised"])
def test_a_failed_download_leaves_no_folder_or_partial_file(tmp_path, monkeypatch, failure):
    monkeypatch.delenv("LAMAML_NO_DOWNLOAD")
    if failure == "download raised":
        monkeypatch.setattr(mnist_files, "download", _raise_after_creating_the_folder)
    else:
        monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: _DroppedConnection(bytes(5000)))
    (tmp_path / "keep").mkdir()         # a folder that was there before stays
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is missing .* could not download") as caught:
        load_mnist(tmp_path / "keep" / "data")
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*")] == [Path("keep")]
    assert str(tmp_path / "keep" / "data" / "MNIST" / "raw") in str(caught.value)


def test_rotation_angles_for_seed_0_are_the_authors_measured_ones():
    angles = rotation_angles(20, seed=0)
    assert np.allclose(angles, AUTHORS_SEED0_ANGLES, atol=1e-4)
    assert all(9 * t <= a < 9 * t + 9 for t, a in enumerate(rotation_angles(20, seed=123)))


def test_rotation_index_map_equals_pil_rotate_on_the_benchmark_angles(mnist):
    Image = pytest.importorskip("PIL.Image")
    images = mnist.test_images[:300, 0]
    pixels = with_zero_pixel(images)
    for angle in rotation_angles(20, seed=0) + rotation_angles(20, seed=7)[::4] + [45.0, 135.0, 270.0]:
        ours = (apply_index_map(pixels, rotation_index_map(angle)) * 255).round().to(torch.uint8).numpy()
        pil = np.stack([np.asarray(Image.fromarray(im.numpy()).rotate(angle)) for im in images])
        np.testing.assert_array_equal(ours, pil.reshape(len(images), -1))


def test_transforms_and_subsets_depend_on_the_seed_only():
    assert all(torch.equal(a, b) for a, b in zip(permutations(5, 3), permutations(5, 3)))
    assert not torch.equal(permutations(1, 3)[0], permutations(1, 4)[0])
    assert all(torch.equal(a, b) for a, b in zip(training_subsets(3, 60000, 1000, 1),
                                                  training_subsets(3, 60000, 1000, 1)))


def test_a_tasks_permutation_is_identical_in_another_process():
    code = ("import hashlib; from lamaml.data.benchmarks import permutations, rotation_angles;"
            "print(hashlib.sha1(b''.join(p.numpy().tobytes() for p in permutations(100, 5))).hexdigest(),"
            " repr(rotation_angles(20, 5)))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
               for _ in range(2)}
    here = hashlib.sha1(b"".join(p.numpy().tobytes() for p in permutations(100, 5))).hexdigest()
    assert outputs == {f"{here} {rotation_angles(20, 5)!r}\n"}


def test_many_permutations_is_lazy_and_has_the_protocols_sizes(data_dir):
    stream = build_benchmark("mnist-many-permutations", data_dir, seed=0, download=False)
    assert len(stream) == 100 and stream.n_outputs == 10
    x, y = stream[99].train()
    assert x.shape == (200, 784) and y.shape == (200,)
    x_test, y_test = stream[42].test()
    assert x_test.shape == (10000, 784) and 0.0 <= x_test.min() and x_test.max() <= 1.0
    assert len({t["permutation_sha1"] for t in stream.describe()}) == 100


def test_a_task_applies_its_permutation_to_the_chosen_training_images(mnist, data_dir):
    stream = build_benchmark("mnist-permutations", data_dir, seed=3, download=False)
    subset, perm = training_subsets(20, 60000, 1000, 3)[4], permutations(20, 3)[4]
    x, y = stream[4].train()
    expected = mnist.train_images[subset].reshape(1000, -1)[:, perm].float() / 255
    assert torch.equal(x, expected) and torch.equal(y, mnist.train_labels[subset])


def test_a_download_is_verified_and_only_then_moved_in_place(tmp_path):
    from lamaml.data.files import download
    source = tmp_path / "served.gz"
    source.write_bytes(b"idx bytes")
    good = hashlib.sha256(b"idx bytes").hexdigest()
    target = tmp_path / "data" / "mnist" / "file.gz"
    with pytest.raises(DataError, match="could not download file.gz") as error:
        download([source.as_uri()], target, "0" * 64)
    assert f"its sha256 is {good}, the official file's is {'0' * 64}" in str(error.value)
    assert not target.exists() and list(target.parent.iterdir()) == []      # no partial file left
    download([(tmp_path / "absent").as_uri(), source.as_uri()], target, good)   # falls back
    assert target.read_bytes() == b"idx bytes"


def test_a_download_checks_the_md5_its_publishers_give_when_asked(tmp_path):
    from lamaml.data.files import download
    source = tmp_path / "served.tar.gz"
    source.write_bytes(b"archive bytes")
    target = tmp_path / "data" / "archive.tar.gz"
    with pytest.raises(DataError, match="its md5 is " + hashlib.md5(b"archive bytes").hexdigest()):
        download([source.as_uri()], target, hashlib.sha256(b"archive bytes").hexdigest(), "md5")
    download([source.as_uri()], target, hashlib.md5(b"archive bytes").hexdigest(), "md5")
    assert target.read_bytes() == b"archive bytes"


@pytest.mark.parametrize("name", ["mnist-rotations", "mnist-permutations", "split-mnist"])
def test_the_first_test_samples_of_a_task_are_the_first_rows_of_its_whole_test_split(name, data_dir):
    stream = build_benchmark(name, data_dir, seed=3, download=False)
    task = stream[1]
    x, y = task.test()
    for n in (1, 7, len(y), len(y) + 5):
        head_x, head_y = task.first("test", n)
        assert torch.equal(head_x, x[:n]) and torch.equal(head_y, y[:n])
    assert all(torch.equal(a, b) for a, b in zip(task.first("test"), (x, y)))
