"""Tiny training set-ups shared by the training tests, and what tests/test_multiworker.py computes
both in one process and in each worker process: initial D/G gradients and a few training steps
of a tiny model on global batch 8. Importing it creates no TensorFlow devices (workers import it
before their strategy exists).

Tiny networks (fmap_base 64, fmap_max 16: 16/16/8 channels at 4/8/16), 16x16 grayscale images,
global batch 8 (4 per replica on the two logical CPUs of conftest).
"""

import os

import numpy as np
import tensorflow as tf

from progan_tf import config
from progan_tf.training.sources import InMemorySource
from progan_tf.training.steps import GanTrainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 8
STEPS = 3


def tiny_config(tmp_path=None, **overrides):
    """A TrainConfig of a tiny model on in-memory data: 16 maps at most, global batch 8,
    16 images per phase, grows 4 -> 16 in 64 images. Its convolutions' gradients are the GEMM
    ones (what paper widths train with on CPUs; `auto` would leave maps this narrow to
    TensorFlow's)."""
    values = dict(data_dir="memory", results_dir=str(tmp_path or "unused"), fmap_base=64,
                  fmap_max=16, minibatch_base=BATCH, minibatch_dict={}, minibatch_repeats=1,
                  lod_training_kimg=0.016, lod_transition_kimg=0.016, total_kimg=0.064,
                  tick_kimg_base=0.016, tick_kimg_dict={}, grid_size=(4, 2), export=False,
                  strategy="one_device", conv_gradients="gemm")
    values.update(overrides)
    return config.TrainConfig(**values)


def tiny_images(num=32, resolution=16, channels=1, seed=0):
    """Smooth random blobs in [-1, 1], [N, R, R, C]."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (num, 4, 4, channels)).astype(np.float32)
    return np.repeat(np.repeat(coarse, resolution // 4, axis=1), resolution // 4, axis=2)


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def first_batch(gan, source, resolution, minibatch=BATCH):
    dataset = gan.distribute(lambda ctx: source.dataset(resolution, minibatch, 0, ctx))
    return next(iter(dataset))


def weights(variables):
    return [v.numpy().copy() for v in variables]


def copy_networks(source_gan, target_gan):
    for name in ("generator", "generator_ema", "discriminator"):
        for target, value in zip(getattr(target_gan, name).weights,
                                 getattr(source_gan, name).weights):
            target.assign(value)


def write_pyramid(path, images_nhwc, labels=None):
    """A dataset directory written by data_tools from [-1, 1] images [N, R, R, C]."""
    from data_tools.pyramid import PyramidWriter
    images = np.clip(np.rint((images_nhwc + 1) * 127.5), 0, 255).astype(np.uint8)
    writer = PyramidWriter(str(path))
    writer.add(images.transpose(0, 3, 1, 2))
    if labels is not None:
        writer.set_labels(labels)
    writer.commit()
    return str(path)


def tree_bytes(directory):
    """{path relative to `directory`: content} of every file below it (to check that a
    directory is left byte-identical)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                out[os.path.relpath(path, directory)] = file.read()
    return out


def read_tensorboard(run_dir):
    from tensorboard.backend.event_processing import event_accumulator
    events = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    return events


def run_steps(cfg, strategy, steps):
    """{"d_grad/<path>": summed gradient, "g_grad/<path>": ..., "d_loss": [steps],
    "g_loss": [steps]}: gradients at the initial weights (nothing applied), then `steps`
    D+G steps at 8x8 while it fades in."""
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, strategy, 16, 1)
    phase = cfg.build_schedule(16, strategy.num_replicas_in_sync).at(0.024)  # 8x8 fading in
    gan.apply_phase(phase)
    res = phase.resolution
    batches = iter(gan.distribute(lambda ctx: source.dataset(res, BATCH, 0, ctx)))
    batch = next(batches)
    out = {}
    d_grads, _ = gan.d_gradients(batch, res, BATCH)
    g_grads, _ = gan.g_gradients(res, BATCH)
    out.update({f"d_grad/{path}": g.numpy() for path, g in d_grads.items()})
    out.update({f"g_grad/{path}": g.numpy() for path, g in g_grads.items()})
    d_losses, g_losses = [], []
    for index in range(steps):
        d_stats, _ = gan.d_step(batch if index == 0 else next(batches), res, BATCH, 0.999)
        g_stats, _ = gan.g_step(res, BATCH)
        d_losses.append(float(d_stats["Loss/D"]))
        g_losses.append(float(g_stats["Loss/G"]))
    out["d_loss"] = np.array(d_losses)
    out["g_loss"] = np.array(g_losses)
    out["alpha"] = np.array(phase.fade_alpha)
    out.update({f"stepwise/{name}": value for name, value in trained_values(gan).items()})
    # The same steps from the same start (the seed makes the initial weights), all of them in
    # one call.
    fused = GanTrainer(cfg, strategy, 16, 1)
    fused.apply_phase(phase)
    batches = iter(fused.distribute(lambda ctx: source.dataset(res, BATCH, 0, ctx)))
    stats, done = fused.train_steps(batches, res, BATCH, 0.999, steps, nonfinite_limit=50)
    assert done == steps and stats["Loss/D"][1] == steps, (done, stats)
    out["fused_d_loss_sum"] = np.array(stats["Loss/D"][0])
    out.update({f"fused/{name}": value for name, value in trained_values(fused).items()})
    return out


def trained_values(gan):
    """{name: value} of everything training changes: G, the EMA generator, D, both optimizers'
    slots and the TrainingState counters (except the wall-clock time)."""
    out = {}
    for module in ("generator", "generator_ema", "discriminator"):
        out.update({f"{module}/{v.path}": v.numpy() for v in getattr(gan, module).weights})
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        out.update({f"{optimizer.name}/{v.path}": v.numpy() for v in optimizer.variables})
    out.update({f"state/{name}": np.array(value) for name, value in gan.state.values().items()
                if name != "train_seconds"})
    return out
