"""Sources of reals: the in-memory source's order, levels and replica split; the flag checks;
--create_embedded_data only at a path named for the embedded set."""

import numpy as np
import pytest
import tensorflow as tf

import conftest
from data_tools.sources import embedded
from progan_tf.training import sources
from training_common import tiny_config, tiny_images, write_pyramid


def test_in_memory_stream_is_a_function_of_the_position_and_the_seed():
    images = tiny_images(num=5, resolution=8)
    source = sources.InMemorySource(images, seed=2)
    assert (source.resolution, source.num_channels, source.num_images) == (8, 1, 5)
    batches = iter(source.dataset(8, 4, start_position=3))
    first, labels = next(batches)
    second, _ = next(batches)
    # Position p holds image (p + 2) mod 5: positions 3..10.
    np.testing.assert_array_equal(first, images[[0, 1, 2, 3]])
    np.testing.assert_array_equal(second, images[[4, 0, 1, 2]])
    assert labels.shape == (4, 0)
    low, _ = next(iter(source.dataset(4, 2)))
    np.testing.assert_allclose(low[0], images[2].reshape(4, 2, 4, 2, 1).mean((1, 3)), rtol=1e-6)


def test_in_memory_replica_batches_concatenate_to_the_global_batch():
    labels = np.eye(4, dtype=np.float32)[np.arange(12) % 4]
    source = sources.InMemorySource(tiny_images(num=12, resolution=8), labels)
    strategy = conftest.two_replicas()
    distributed = iter(strategy.distribute_datasets_from_function(
        lambda ctx: source.dataset(8, 8, 5, ctx)))
    single = iter(source.dataset(8, 8, 5))
    for _ in range(3):
        images, labels_split = next(distributed)
        expected_images, expected_labels = next(single)
        parts = strategy.experimental_local_results(images)
        assert [tuple(p.shape) for p in parts] == [(4, 8, 8, 1)] * 2
        np.testing.assert_array_equal(np.concatenate(parts), expected_images)
        np.testing.assert_array_equal(
            np.concatenate(strategy.experimental_local_results(labels_split)), expected_labels)


def test_in_memory_source_refuses_batches_that_do_not_split():
    source = sources.InMemorySource(tiny_images(num=4, resolution=8))
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=3)
    with pytest.raises(ValueError, match="not divisible by the 3 replicas"):
        source.dataset(8, 8, 0, context)
    with pytest.raises(ValueError, match=r"images must be \[N, R, R, C\]"):
        sources.InMemorySource(np.zeros((2, 8, 4, 1)))


def test_flags_that_do_not_fit_the_data_are_refused(tmp_path):
    source = sources.InMemorySource(tiny_images(num=4, resolution=8))
    with pytest.raises(ValueError, match="--lod_initial_resolution: 16 is larger"):
        sources.check_data(tiny_config(lod_initial_resolution=16), source)
    with pytest.raises(ValueError, match=r"--data_dir: \S+nowhere is not a directory"):
        sources.open_source(tiny_config(data_dir=str(tmp_path / "nowhere")))
    sources.check_data(tiny_config(), source)


def test_create_embedded_data_refuses_a_missing_data_dir_not_named_for_the_embedded_set(
        tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(embedded, "create_embedded", built.append)
    for name in ("fashion-mnist-23", "fashion-mnist-32-typo", "datasets"):
        data_dir = tmp_path / "datasets" / name
        with pytest.raises(ValueError) as raised:
            sources.open_source(tiny_config(data_dir=str(data_dir), create_embedded_data=True))
        assert str(raised.value) == (
            f"--data_dir: {data_dir} does not exist (--create_embedded_data builds the embedded "
            f"set only at a path ending in fashion-mnist-32)")
    assert built == [] and not (tmp_path / "datasets").exists()


@pytest.mark.parametrize("suffix", ["", "/", "//"])
def test_create_embedded_data_builds_at_a_path_ending_in_the_embedded_sets_name(
        tmp_path, monkeypatch, suffix):
    assert embedded.DIRECTORY_NAME == "fashion-mnist-32"
    built = []

    def build_a_small_pyramid(path):  # stands in for the 12,000 images of the real set
        built.append(path)
        write_pyramid(path, tiny_images(num=4, resolution=8))

    monkeypatch.setattr(embedded, "create_embedded", build_a_small_pyramid)
    data_dir = str(tmp_path / "data" / "fashion-mnist-32") + suffix
    messages = []
    source = sources.open_source(tiny_config(data_dir=data_dir, create_embedded_data=True),
                                 messages.append)
    assert built == [data_dir] and (source.resolution, source.num_images) == (8, 4)
    assert messages == [f"Building the embedded Fashion-MNIST dataset in {data_dir}"]
