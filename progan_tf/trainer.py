"""ProGAN training: the GAN steps under a tf.distribute strategy (`GanTrainer`) and the run loop
(`train`): schedule, run directory, checkpoints, resume, TensorBoard, image grids, export.

One training iteration, as in [PG] train.py: `d_repeats` discriminator steps, each followed by the
generator EMA update, then one generator step; the schedule (lod, fade-in alpha, minibatch,
learning rate) is re-evaluated every `minibatch_repeats` iterations from the images shown.

A step runs in two `strategy.run` calls (SPEC 10): the first computes each replica's gradients and
returns them with the number of non-finite entries; outside the replicas the counts are summed
and a `tf.cond` runs the second `strategy.run`, which applies the gradients (Keras sums them over
the replicas), only when every replica's gradients are finite. Each replica's loss is its share of
the global-batch mean, so the summed gradient is the gradient of the global mean.

Randomness is stateless (philox) and keyed by (seed, step counter, purpose); every replica draws the
global batch's latents and interpolation factors and takes its slice, so the result does not depend
on the number of replicas, and the counters in the checkpoint are the whole RNG state.
"""

import collections
import dataclasses
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from progan_tf import data
from progan_tf import losses
from progan_tf import networks
from progan_tf import schedule as schedule_lib
from progan_tf.networks import stylegan
from progan_tf import summaries

CHECKPOINT_DIR = "checkpoints"
DONE_FILE = "_training-done.txt"
NETWORK_JSON = "network.json"
FLAGS_JSON = "flags.json"
LOG_FILE = "log.txt"
EXPORT_DIR = "export"

# Loss scaling of --mixed_precision, as the original's tfutil.Optimizer (log2 values).
LOSS_SCALE_INIT_LOG2 = 64.0
LOSS_SCALE_INCREMENT_LOG2 = 0.0005
LOSS_SCALE_DECREMENT_LOG2 = 1.0

# StyleGAN's style-mixing grid in the run directory: source images per side.
MIXING_GRID_COLUMNS = 5
MIXING_GRID_ROWS = 3

# Purposes of the stateless random streams; each step counter is multiplied by their number.
_D_LATENTS, _D_MIX, _G_LATENTS, _G_LABELS, _NUM_STREAMS = range(5)


class TrainingError(RuntimeError):
    """Training cannot continue; the message says why and where the last good state is."""


# ------------------------------------------------------------------------------------------------
# Data sources: anything with resolution, num_channels, label_size, labels and
# dataset(resolution, global_batch_size, start_position, input_context).


def _split_for_pipeline(dataset, global_batch_size, input_context):
    """Turns a dataset of global batches into this input pipeline's per-replica batches, in
    replica order, so that the replicas' batches concatenate to the global batch."""
    if input_context is None or input_context.num_replicas_in_sync == 1:
        return dataset
    replicas = input_context.num_replicas_in_sync
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    local = replicas // input_context.num_input_pipelines
    first = input_context.input_pipeline_id * local

    def split(images, labels):
        images = tf.reshape(images, [replicas, per_replica, *images.shape[1:]])[first:first + local]
        labels = tf.reshape(labels, [replicas, per_replica, labels.shape[-1]])[first:first + local]
        return tf.data.Dataset.from_tensor_slices((images, labels))

    return dataset.flat_map(split)


class InMemorySource:
    """Training images held in memory, for tests and small experiments.

    images: float32 [N, R, R, C] in [-1, 1]; lower levels are 2x2 means of the level above.
    labels: float32 [N, L] or None. The image at stream position p is image (p + seed) mod N,
    a pure function of the position as `progan_tf.data` promises.
    """

    def __init__(self, images, labels=None, seed=0):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be [N, R, R, C], got shape {images.shape}")
        self.resolution = int(images.shape[1])
        self.num_channels = int(images.shape[3])
        self.num_images = int(images.shape[0])
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
        self.label_size = 0 if self.labels is None else int(self.labels.shape[1])
        self.seed = int(seed)
        self.levels = {self.resolution: images}
        res = self.resolution
        while res > 4:
            above = self.levels[res]
            res //= 2
            self.levels[res] = above.reshape(-1, res, 2, res, 2, self.num_channels).mean((2, 4))

    def dataset(self, resolution, global_batch_size, start_position=0, input_context=None):
        images = tf.constant(self.levels[resolution])
        labels = tf.constant(self.labels if self.labels is not None
                             else np.zeros((self.num_images, 0), np.float32))
        positions = tf.data.Dataset.range(start_position, 2 ** 62)
        indices = positions.map(lambda p: (p + self.seed) % self.num_images)
        dataset = indices.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
        dataset = dataset.batch(global_batch_size, drop_remainder=True)
        return _split_for_pipeline(dataset, global_batch_size, input_context).prefetch(2)


class PyramidSource:
    """A multi-resolution TFRecord dataset directory read through `progan_tf.data`."""

    def __init__(self, data_dir, seed, mirror=False):
        self.pyramid = data.open_pyramid(data_dir)
        self.resolution = int(self.pyramid.resolution)
        self.num_channels = int(self.pyramid.num_channels)
        self.label_size = int(self.pyramid.label_size)
        self.labels = self.pyramid.labels
        self.num_images = int(self.pyramid.num_images)
        self.seed = seed
        self.mirror = mirror

    def dataset(self, resolution, global_batch_size, start_position=0, input_context=None):
        return data.make_dataset(
            self.pyramid, resolution, global_batch_size=global_batch_size, seed=self.seed,
            start_position=start_position, mirror=self.mirror, input_context=input_context,
            repeat=True)


# ------------------------------------------------------------------------------------------------
# Strategy and optimizers.


def make_strategy(name, worker_timeout_sec=None):
    """tf.distribute strategy by name: "auto" = one_device for one device, else mirrored over
    all GPUs (or all logical CPUs when there is no GPU); "multi_worker" reads the cluster from
    TF_CONFIG, and a collective that waits longer than `worker_timeout_sec` for a peer fails
    (a dead worker then stops the others instead of hanging them)."""
    if name == "multi_worker":  # first: collectives must be configured before any op runs
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy=multi_worker: TF_CONFIG is not set (it lists the "
                             "workers and this worker's index; see README, Multi-worker)")
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=worker_timeout_sec)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "auto":
        name = "mirrored" if len(devices) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"--strategy: unknown strategy {name!r}")


def is_chief(strategy):
    """True on the worker that writes logs, grids, checkpoints and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def reset_optimizer(optimizer):
    """Zeroes Adam's step counter and moment slots; the learning-rate variable is kept (zeroing
    every entry of `optimizer.variables` would set it to 0; SPEC 10)."""
    for variable in optimizer.variables:
        if variable.name != "learning_rate":
            variable.assign(tf.zeros(variable.shape, variable.dtype))


def ema_beta_for(cfg, minibatch):
    """Generator EMA factor per D step: `ema_beta`, or 0.5^(minibatch / (ema_kimg * 1000)) when a
    half-life `ema_kimg` is given (StyleGAN)."""
    if cfg.ema_kimg > 0:
        return 0.5 ** (minibatch / (cfg.ema_kimg * 1000.0))
    return cfg.ema_beta


# ------------------------------------------------------------------------------------------------
# The GAN steps.


class TrainingState(tf.Module):
    """Schedule position, data position and RNG counters, saved with every checkpoint."""

    def __init__(self):
        super().__init__(name="training_state")
        self.nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="nimg")
        self.data_position = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_position")
        self.d_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="d_steps")
        self.g_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="g_steps")
        self.prev_lod = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="prev_lod")
        self.tick = tf.Variable(0, dtype=tf.int64, trainable=False, name="tick")
        self.tick_start_nimg = tf.Variable(0, dtype=tf.int64, trainable=False,
                                           name="tick_start_nimg")
        self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
        self.d_nonfinite_in_a_row = tf.Variable(0, dtype=tf.int64, trainable=False,
                                                name="d_nonfinite_in_a_row")
        self.g_nonfinite_in_a_row = tf.Variable(0, dtype=tf.int64, trainable=False,
                                                name="g_nonfinite_in_a_row")
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                         name="train_seconds")
        # log2 of the loss scales of --mixed_precision (SPEC 2: init 64, +0.0005 per applied
        # step, -1 per overflow); unused in float32.
        self.d_loss_scale_log2 = tf.Variable(LOSS_SCALE_INIT_LOG2, dtype=tf.float32,
                                             trainable=False, name="d_loss_scale_log2")
        self.g_loss_scale_log2 = tf.Variable(LOSS_SCALE_INIT_LOG2, dtype=tf.float32,
                                             trainable=False, name="g_loss_scale_log2")

    def values(self):
        return {name: getattr(self, name).numpy().item() for name in self.names()}

    def assign(self, **values):
        for name, value in values.items():
            getattr(self, name).assign(value)

    @staticmethod
    def names():
        return ("nimg", "data_position", "d_steps", "g_steps", "prev_lod", "tick",
                "tick_start_nimg", "skipped_steps", "d_nonfinite_in_a_row", "g_nonfinite_in_a_row",
                "train_seconds", "d_loss_scale_log2", "g_loss_scale_log2")


def network_kwargs(cfg, resolution, num_channels, label_size):
    """Constructor arguments of the generator and discriminator for `cfg` and the data."""
    common = dict(resolution=resolution, num_channels=num_channels, label_size=label_size,
                  fmap_base=cfg.fmap_base, fmap_decay=cfg.fmap_decay, fmap_max=cfg.fmap_max)
    generator = dict(common, latent_size=cfg.latent_size)
    discriminator = dict(common, mbstd_group_size=cfg.mbstd_group_size,
                         mbstd_grouping=cfg.mbstd_grouping)
    if cfg.architecture == "stylegan":
        # None = nf(0) as in ProGAN (512 at the paper's widths); w has the latent's size.
        latent_size = cfg.latent_size or networks.nf(0, cfg.fmap_base, cfg.fmap_decay,
                                                     cfg.fmap_max)
        dlatent_size = cfg.dlatent_size or latent_size
        generator = dict(common, latent_size=latent_size, dlatent_size=dlatent_size,
                         mapping_layers=cfg.mapping_layers,
                         mapping_fmaps=cfg.mapping_fmaps or dlatent_size,
                         mapping_lrmul=cfg.mapping_lrmul)
    return generator, discriminator


def build_networks(cfg, g_kwargs, d_kwargs):
    """(generator, EMA generator, discriminator) of cfg.architecture; call in strategy.scope().

    StyleGAN: the training generator draws fresh noise, the EMA generator (grids, metrics,
    export) renders each layer's fixed noise image. The mapping network's learning-rate
    multiplier lives in its layers (weights and biases), so the optimizers use one rate.
    """
    if cfg.architecture == "stylegan":
        generator = stylegan.StyleGenerator(**g_kwargs, name="generator")
        generator_ema = stylegan.StyleGenerator(**g_kwargs, name="generator_ema")
        discriminator = stylegan.stylegan_discriminator(**d_kwargs, name="discriminator")
        generator.set_noise_mode("random")
        generator_ema.set_noise_mode("const")
        return generator, generator_ema, discriminator
    return (networks.Generator(**g_kwargs, name="generator"),
            networks.Generator(**g_kwargs, name="generator_ema"),
            networks.Discriminator(**d_kwargs, name="discriminator"))


def _is_noise_switch(variable):
    """StyleGAN's per-layer `randomize` scalar: each generator keeps its own noise mode."""
    return variable.path.rsplit("/", 1)[-1] == "randomize"


class GanTrainer:
    """Networks, optimizers, EMA and the distributed D/G steps of one training run.

    cfg: config.TrainConfig. resolution / num_channels / label_size: of the data (labels are used
    only when cfg.use_labels). labels: float32 [N, L] label table the generator's random labels
    are drawn from (None without labels). strategy: a tf.distribute strategy.
    """

    def __init__(self, cfg, strategy, resolution, num_channels, label_size=0, labels=None):
        self.cfg = cfg
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        self.label_size = label_size if cfg.use_labels else 0
        self.labels = (tf.constant(np.asarray(labels, np.float32))
                       if self.label_size else None)
        self.trace_counts = collections.Counter()
        self._d_step_fns, self._g_step_fns, self._grad_fns, self._render_fns = {}, {}, {}, {}
        g_kwargs, d_kwargs = network_kwargs(cfg, resolution, num_channels, self.label_size)
        keras.utils.set_random_seed(cfg.seed)  # the initial weights are a function of the seed
        # Process-wide (SPEC 10): every layer built from here on computes in float16 while its
        # variables stay float32; the layers keep their scaling and normalisation in float32.
        keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision
                                                else "float32")
        with strategy.scope():
            self.generator, self.generator_ema, self.discriminator = build_networks(
                cfg, g_kwargs, d_kwargs)
            self.g_optimizer = self._adam("g_optimizer")
            self.d_optimizer = self._adam("d_optimizer")
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self._ema_pairs = list(zip(self.generator_ema.weights, self.generator.weights))
        for ema, live in self._ema_pairs:
            if tuple(ema.shape) != tuple(live.shape):
                raise TrainingError(f"EMA generator weight {ema.path} {ema.shape} does not match "
                                    f"{live.path} {live.shape}")
            if not _is_noise_switch(live):
                ema.assign(live)
        self._ema_pairs = [(ema, live) for ema, live in self._ema_pairs
                           if not _is_noise_switch(live)]
        self.state = TrainingState()
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator, generator_ema=self.generator_ema,
            discriminator=self.discriminator, g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer, state=self.state)

    def _adam(self, name):
        return keras.optimizers.Adam(learning_rate=self.cfg.lrate_base, beta_1=self.cfg.adam_beta1,
                                     beta_2=self.cfg.adam_beta2, epsilon=self.cfg.adam_epsilon,
                                     name=name)

    @property
    def latent_size(self):
        return self.generator.latent_size

    def network_json(self):
        """The run directory's network.json contents."""
        return {"architecture": self.cfg.architecture,
                "generator": self.generator.get_config(),
                "discriminator": self.discriminator.get_config()}

    # -- schedule ----------------------------------------------------------------------------

    def apply_phase(self, phase):
        """Sets the fade-in alpha and learning rates of `phase` (a schedule.Phase) and resets
        both optimizers when floor(lod) or ceil(lod) changed since the previous phase."""
        for network in (self.generator, self.generator_ema, self.discriminator):
            network.set_alpha(phase.fade_alpha)
        self.g_optimizer.learning_rate = phase.g_lrate
        self.d_optimizer.learning_rate = phase.d_lrate
        prev_lod = float(self.state.prev_lod.numpy())  # -1 before the first phase
        changed = schedule_lib.lod_changed(phase.lod, prev_lod if prev_lod >= 0 else None)
        if changed and self.cfg.reset_optimizer_on_lod_change:
            reset_optimizer(self.g_optimizer)
            reset_optimizer(self.d_optimizer)
        self.state.prev_lod.assign(phase.lod)
        return changed

    # -- randomness ----------------------------------------------------------------------------

    def _seed(self, counter, stream):
        counter = tf.cast(counter, tf.int64) * _NUM_STREAMS + stream
        return tf.stack([tf.constant(self.cfg.seed, tf.int64), counter])

    def _replica_slice(self, values, minibatch):
        """Rows of the global-batch `values` that belong to the current replica."""
        per_replica = minibatch // self.num_replicas
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        start = tf.cast(replica, tf.int32) * per_replica
        return values[start:start + per_replica]

    def _latents(self, counter, stream, minibatch):
        latents = tf.random.stateless_normal([minibatch, self.latent_size],
                                             self._seed(counter, stream), alg="philox")
        return self._replica_slice(latents, minibatch)

    def _random_labels(self, counter, minibatch):
        index = tf.random.stateless_uniform([minibatch], self._seed(counter, _G_LABELS), 0,
                                            tf.shape(self.labels, out_type=tf.int64)[0],
                                            dtype=tf.int64, alg="philox")
        return self._replica_slice(tf.gather(self.labels, index), minibatch)

    # -- per-replica computations ------------------------------------------------------------

    def _generator_inputs(self, latents, labels):
        return latents if not self.label_size else [latents, labels]

    def _fakes(self, latents, labels, counter, stream, resolution, minibatch, stats):
        """Training forward of the generator at `resolution`: images [n, r, r, C].

        StyleGAN (SPEC 3): w = mapping(z); the batch mean of w_0 goes into
        stats["_dlatent_mean"] (the step updates dlatent_avg from it outside the replicas);
        with probability style_mixing_prob a second latent's w replaces the layers from a
        random crossover on (one draw per global batch, the same on every replica)."""
        if self.cfg.architecture != "stylegan":
            return self.generator.model_for(resolution)(
                self._generator_inputs(latents, labels), training=True)
        mapping = self.generator.mapping_model()
        dlatents = mapping(self._generator_inputs(latents, labels), training=True)
        stats["_dlatent_mean"] = tf.reduce_sum(tf.cast(dlatents[:, 0], tf.float32),
                                               axis=0) / minibatch
        if self.cfg.style_mixing_prob > 0:
            key = self._seed(counter, stream)
            latents2 = self._replica_slice(tf.random.stateless_normal(
                [minibatch, self.latent_size], tf.random.experimental.stateless_fold_in(key, 1),
                alg="philox"), minibatch)
            dlatents2 = mapping(self._generator_inputs(latents2, labels), training=True)
            cutoff = stylegan.draw_mixing_cutoff(
                stylegan.num_layers_at(resolution), self.cfg.style_mixing_prob,
                tf.random.experimental.stateless_fold_in(key, 2))
            stats["_mixing_cutoff"] = cutoff
            dlatents = stylegan.mix_styles(dlatents, dlatents2, cutoff)
        return self.generator.synthesis_model_for(resolution)(dlatents, training=True)

    def _absorb_generator_stats(self, stats):
        """Moves the StyleGAN entries out of the reduced `stats`: updates dlatent_avg from the
        global batch mean of w_0 and keeps the last crossover (for tests) in
        `self.last_mixing_cutoff`."""
        mean = stats.pop("_dlatent_mean", None)
        if mean is not None:
            avg = self.generator.dlatent_avg
            avg.assign(mean + self.cfg.dlatent_avg_beta * (avg - mean))
        cutoff = stats.pop("_mixing_cutoff", None)
        if cutoff is not None:
            stats["Train/mixing_cutoff"] = tf.cast(cutoff, tf.float32) / self.num_replicas
        return stats

    def _d_replica(self, reals, labels, counter, resolution, minibatch):
        """Per-replica D loss and gradients: (grads, stats of global-batch means, non-finite)."""
        cfg = self.cfg
        d_model = self.discriminator.model_for(resolution)
        d_vars = self._d_vars(resolution)
        reals = data.crossfade_reals(tf.cast(reals, tf.float32), self.discriminator.fade_alpha)
        latents = self._latents(counter, _D_LATENTS, minibatch)
        generator_stats = {}
        fakes = self._fakes(latents, labels, counter, _D_LATENTS, resolution, minibatch,
                            generator_stats)

        def critic(images):
            return losses.split_scores(d_model(images, training=True))[0]

        stats = {}
        with tf.GradientTape() as tape:
            real_scores, real_logits = losses.split_scores(d_model(reals, training=True))
            fake_scores, fake_logits = losses.split_scores(d_model(fakes, training=True))
            if cfg.loss == "wgan_gp":
                mix = tf.random.stateless_uniform([minibatch, 1, 1, 1],
                                                  self._seed(counter, _D_MIX), alg="philox")
                mix = self._replica_slice(mix, minibatch)
                penalty, _ = losses.gradient_penalty(critic, reals, fakes, mix, cfg.gp_target)
                per_sample = losses.wgan_gp_d_loss(real_scores, fake_scores, penalty,
                                                   cfg.gp_lambda, cfg.gp_target, cfg.drift_weight)
                stats["Loss/gradient_penalty"] = penalty
                stats["Loss/drift"] = losses.drift_penalty(real_scores)
            elif cfg.loss == "lsgan":
                per_sample = losses.lsgan_d_loss(real_scores, fake_scores)
            else:
                r1 = losses.r1_penalty(critic, reals)
                per_sample = losses.logistic_r1_d_loss(real_scores, fake_scores, r1, cfg.r1_gamma)
                stats["Loss/r1_penalty"] = r1
            if self.label_size:
                label_real = losses.label_penalty(labels, real_logits)
                label_fake = losses.label_penalty(labels, fake_logits)
                per_sample += (label_real + label_fake) * cfg.cond_weight
                stats["Loss/label_real"] = label_real
                stats["Loss/label_fake"] = label_fake
            loss = tf.reduce_sum(per_sample) / minibatch
            scale = self._loss_scale(self.state.d_loss_scale_log2)
            scaled_loss = loss * scale if scale is not None else loss
        grads = self._unscaled_gradients(tape.gradient(scaled_loss, d_vars), d_vars, scale)
        stats.update({"Loss/D": per_sample, "Score/real": real_scores,
                      "Score/fake": fake_scores})
        stats = {tag: tf.reduce_sum(value) / minibatch for tag, value in stats.items()}
        stats.update(generator_stats)
        return grads, stats, _count_nonfinite(grads)

    def _g_replica(self, counter, resolution, minibatch):
        cfg = self.cfg
        d_model = self.discriminator.model_for(resolution)
        g_vars = self._g_vars(resolution)
        latents = self._latents(counter, _G_LATENTS, minibatch)
        labels = self._random_labels(counter, minibatch) if self.label_size else None
        stats = {}
        with tf.GradientTape() as tape:
            fakes = self._fakes(latents, labels, counter, _G_LATENTS, resolution, minibatch,
                                stats)
            fake_scores, fake_logits = losses.split_scores(d_model(fakes, training=True))
            if cfg.loss == "wgan_gp":
                per_sample = losses.wgan_g_loss(fake_scores)
            elif cfg.loss == "lsgan":
                per_sample = losses.lsgan_g_loss(fake_scores)
            else:
                per_sample = losses.logistic_ns_g_loss(fake_scores)
            if self.label_size:
                label_fake = losses.label_penalty(labels, fake_logits)
                per_sample += label_fake * cfg.cond_weight
            loss = tf.reduce_sum(per_sample) / minibatch
            scale = self._loss_scale(self.state.g_loss_scale_log2)
            scaled_loss = loss * scale if scale is not None else loss
        grads = self._unscaled_gradients(tape.gradient(scaled_loss, g_vars), g_vars, scale)
        stats["Loss/G"] = tf.reduce_sum(per_sample) / minibatch
        return grads, stats, _count_nonfinite(grads)

    def _loss_scale(self, loss_scale_log2):
        """2^loss_scale_log2 under --mixed_precision (the loss is multiplied by it inside the tape
        so float16 gradients do not underflow), None in float32."""
        if not self.cfg.mixed_precision:
            return None
        return tf.pow(2.0, tf.cast(loss_scale_log2, tf.float32))

    @staticmethod
    def _unscaled_gradients(grads, variables, scale):
        """float32 gradients (zeros for unused variables) divided by the loss scale; an
        overflow shows up as non-finite entries, which the caller counts after the all-reduce."""
        grads = _zeros_for_none(grads, variables)
        if scale is None:
            return grads
        return [tf.cast(g, tf.float32) / scale for g in grads]

    def _update_loss_scale(self, loss_scale_log2, applied):
        """+0.0005 after an applied step, -1 after an overflow (decided on summed counts, so
        every replica and worker agrees)."""
        if self.cfg.mixed_precision:
            loss_scale_log2.assign_add(tf.where(applied, LOSS_SCALE_INCREMENT_LOG2,
                                                -LOSS_SCALE_DECREMENT_LOG2))

    def _g_vars(self, resolution):
        """Generator variables in use at `resolution` (the optimizer was built over all)."""
        return self.generator.model_for(resolution).trainable_variables

    def _d_vars(self, resolution):
        return self.discriminator.model_for(resolution).trainable_variables

    # -- distributed steps -------------------------------------------------------------------

    def _reduce(self, stats):
        return {tag: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for tag, value in stats.items()}

    def _apply_if_finite(self, optimizer, variables, grads, count, after=None):
        """Second strategy.run, only when the summed non-finite count is 0 (SPEC 10)."""
        count = self.strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None)

        def apply():
            self.strategy.run(lambda *g: optimizer.apply_gradients(zip(g, variables)),
                              args=tuple(grads))
            if after is not None:
                after()
            return tf.constant(True)

        return tf.cond(tf.equal(count, 0), apply, lambda: tf.constant(False))

    def _update_ema(self, beta):
        """Gs <- G + beta * (Gs - G) for trainable weights; non-trainables are copied."""
        beta = tf.cast(beta, tf.float32)
        for ema, live in self._ema_pairs:
            if live.trainable:
                ema.assign(live + beta * (ema - live))
            else:
                ema.assign(live)

    def _d_step_fn(self, resolution, minibatch):
        key = (resolution, minibatch)
        if key not in self._d_step_fns:
            variables = self._d_vars(resolution)

            def d_step(reals, labels, counter, ema_beta):
                self.trace_counts[("d_step", resolution)] += 1
                grads, stats, count = self.strategy.run(
                    self._d_replica, args=(reals, labels, counter),
                    kwargs=dict(resolution=resolution, minibatch=minibatch))
                applied = self._apply_if_finite(self.d_optimizer, variables, grads, count,
                                                after=lambda: self._update_ema(ema_beta))
                self._update_loss_scale(self.state.d_loss_scale_log2, applied)
                return self._absorb_generator_stats(self._reduce(stats)), applied

            self._d_step_fns[key] = tf.function(d_step, jit_compile=self.cfg.xla or None)
        return self._d_step_fns[key]

    def _g_step_fn(self, resolution, minibatch):
        key = (resolution, minibatch)
        if key not in self._g_step_fns:
            variables = self._g_vars(resolution)

            def g_step(counter):
                self.trace_counts[("g_step", resolution)] += 1
                grads, stats, count = self.strategy.run(
                    self._g_replica, args=(counter,),
                    kwargs=dict(resolution=resolution, minibatch=minibatch))
                applied = self._apply_if_finite(self.g_optimizer, variables, grads, count)
                self._update_loss_scale(self.state.g_loss_scale_log2, applied)
                return self._absorb_generator_stats(self._reduce(stats)), applied

            self._g_step_fns[key] = tf.function(g_step, jit_compile=self.cfg.xla or None)
        return self._g_step_fns[key]

    def d_step(self, batch, resolution, minibatch, ema_beta):
        """One discriminator step (+ EMA) on a distributed batch (reals, labels).
        Returns (stats: {tag: scalar}, applied: bool tensor). Advances the D step counter."""
        reals, labels = batch
        counter = self.state.d_steps.read_value()
        out = self._d_step_fn(resolution, minibatch)(
            reals, labels, counter, tf.constant(ema_beta, tf.float32))
        self.state.d_steps.assign_add(1)
        return out

    def g_step(self, resolution, minibatch):
        """One generator step. Returns (stats, applied). Advances the G step counter."""
        counter = self.state.g_steps.read_value()
        out = self._g_step_fn(resolution, minibatch)(counter)
        self.state.g_steps.assign_add(1)
        return out

    def d_gradients(self, batch, resolution, minibatch):
        """Summed D gradients over the replicas and the stats of one D step at the current D
        step counter, nothing applied (for tests and debugging).
        Returns ({variable path: gradient}, stats)."""
        reals, labels = batch
        return self._gradients("d", self._d_replica, self._d_vars(resolution),
                               (reals, labels, self.state.d_steps.read_value()), resolution,
                               minibatch)

    def g_gradients(self, resolution, minibatch):
        """As `d_gradients` for the generator step at the current G step counter."""
        return self._gradients("g", self._g_replica, self._g_vars(resolution),
                               (self.state.g_steps.read_value(),), resolution, minibatch)

    def _gradients(self, kind, replica_fn, variables, args, resolution, minibatch):
        key = (kind, resolution, minibatch)
        if key not in self._grad_fns:
            @tf.function
            def gradients(*args):
                grads, stats, _ = self.strategy.run(
                    replica_fn, args=args, kwargs=dict(resolution=resolution, minibatch=minibatch))
                return ([self.strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None)
                         for g in grads], self._reduce(stats))
            self._grad_fns[key] = gradients
        grads, stats = self._grad_fns[key](*args)
        return {v.path: g for v, g in zip(variables, grads)}, stats

    def broadcast_from_chief(self, chief):
        """Gives every worker the chief's values of all checkpointed variables (networks,
        optimizers, training state): one all-reduce in which the other workers contribute
        zeros. Every worker must call it; `chief` says whether this process is the chief."""
        variables = [v for v in self.checkpoint_variables() if v.dtype != tf.string]

        def contribute():
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0) if chief else tf.constant(False)
            values = [tf.where(first, tf.convert_to_tensor(v), tf.zeros(v.shape, v.dtype))
                      for v in variables]
            return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

        reduced = self.strategy.experimental_local_results(self.strategy.run(contribute))[0]
        for variable, value in zip(variables, reduced):
            variable.assign(value)

    def checkpoint_variables(self):
        """Every variable the checkpoint saves, in a fixed order."""
        out = []
        for module in (self.generator, self.generator_ema, self.discriminator):
            out.extend(module.weights)
        for optimizer in (self.g_optimizer, self.d_optimizer):
            out.extend(optimizer.variables)
        out.extend(getattr(self.state, name) for name in TrainingState.names())
        return out

    def distribute(self, dataset_fn):
        """Distributed dataset from `dataset_fn(input_context)`."""
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def style_mixing_tiles(self, column_latents, row_latents, layers, resolution, label=None):
        """summaries.style_mixing_tiles on the EMA generator at `resolution` (its fixed noise);
        label: [1, L] label of every image of a conditional generator."""
        mapping = self.generator_ema.mapping_model()
        synthesis = self.generator_ema.synthesis_model_for(resolution)

        def map_latents(latents):
            if not self.label_size:
                return mapping(latents, training=False)
            return mapping([latents, np.repeat(label, len(latents), axis=0)], training=False)

        return summaries.style_mixing_tiles(
            map_latents, lambda dlatents: synthesis(dlatents, training=False), column_latents,
            row_latents, layers)

    def render(self, latents, labels, resolution, batch_size=64):
        """Images of the EMA generator at `resolution`: float32 [N, r, r, C] numpy. Runs in
        chunks of `batch_size` (the last one padded), so one trace serves every call."""
        if resolution not in self._render_fns:
            model = self.generator_ema.model_for(resolution)
            self._render_fns[resolution] = tf.function(
                lambda *inputs: model(inputs[0] if len(inputs) == 1 else list(inputs),
                                      training=False))
        fn = self._render_fns[resolution]
        out = []
        for start in range(0, len(latents), batch_size):
            chunk = [latents[start:start + batch_size]]
            if self.label_size:
                chunk.append(labels[start:start + batch_size])
            count = len(chunk[0])
            chunk = [np.concatenate([c, np.zeros((batch_size - count,) + c.shape[1:], c.dtype)])
                     for c in chunk]
            out.append(np.asarray(fn(*[tf.constant(c) for c in chunk]), np.float32)[:count])
        return np.concatenate(out)


def _zeros_for_none(grads, variables):
    return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]


def _count_nonfinite(grads):
    counts = [tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(g)), tf.int32))
              for g in grads if g is not None]
    return tf.add_n(counts) if counts else tf.constant(0, tf.int32)


# ------------------------------------------------------------------------------------------------
# Run directories.


def _run_id(name):
    match = re.match(r"^(\d+)-", name)
    return int(match.group(1)) if match else None


def create_run_dir(results_dir, desc):
    """Creates `results_dir/NNNNN-desc` with the next free number, as the original does."""
    os.makedirs(results_dir, exist_ok=True)
    while True:
        ids = [_run_id(name) for name in os.listdir(results_dir)]
        run_id = max([i for i in ids if i is not None], default=-1) + 1
        path = os.path.join(results_dir, f"{run_id:05d}-{desc}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            continue


def has_checkpoint(run_dir):
    return tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR)) is not None


def find_resumable_run(results_dir, desc):
    """Newest `NNNNN-desc` run in `results_dir` with a checkpoint and no `_training-done.txt`."""
    if not os.path.isdir(results_dir):
        return None
    pattern = re.compile(r"^\d+-" + re.escape(desc) + r"$")
    candidates = sorted((name for name in os.listdir(results_dir) if pattern.match(name)),
                        key=_run_id, reverse=True)
    for name in candidates:
        path = os.path.join(results_dir, name)
        if not os.path.exists(os.path.join(path, DONE_FILE)) and has_checkpoint(path):
            return path
    return None


def resolve_resume(cfg):
    """Run directory to continue, or None for a new run."""
    if cfg.resume == "auto":
        return find_resumable_run(cfg.results_dir, cfg.run_desc)
    if cfg.resume:
        if not has_checkpoint(cfg.resume):
            raise TrainingError(f"--resume: {cfg.resume} has no checkpoint in "
                                f"{os.path.join(cfg.resume, CHECKPOINT_DIR)}")
        return cfg.resume
    return None


def write_json_atomic(path, value):
    summaries.write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def _normalized(value):
    return json.loads(json.dumps(value, sort_keys=True))


# ------------------------------------------------------------------------------------------------
# The training loop.


@dataclasses.dataclass
class TrainResult:
    """run_dir: the run directory; status: "done" or "interrupted";
    signal: the signal number when interrupted; kimg: images shown / 1000 at the end."""

    run_dir: str
    status: str
    kimg: float
    signal: int | None = None
    export_dir: str | None = None


def open_source(cfg, log=print):
    """Data source of `cfg` (raises a clear ValueError for an unusable dataset directory)."""
    if cfg.create_embedded_data and not os.path.exists(cfg.data_dir):
        from data_tools.sources.embedded import create_embedded
        log(f"Building the embedded Fashion-MNIST dataset in {cfg.data_dir}")
        create_embedded(cfg.data_dir)
    if not os.path.isdir(cfg.data_dir):
        raise ValueError(f"--data_dir: {cfg.data_dir} is not a directory")
    return PyramidSource(cfg.data_dir, seed=cfg.seed, mirror=cfg.mirror_augment)


def check_metrics(cfg, source):
    """Metric names of --metrics, checked (needs the dataset directory for the reals)."""
    if not cfg.metrics:
        return []
    from progan_tf import metrics as metrics_lib
    names = metrics_lib.parse_metric_names(",".join(cfg.metrics))
    if not isinstance(source, PyramidSource):
        raise ValueError("--metrics: needs a dataset directory (--data_dir) for the reals")
    return names


def check_data(cfg, source):
    """Raises ValueError when the flags do not fit the data."""
    if cfg.resolution is not None and cfg.resolution != source.resolution:
        raise ValueError(f"--resolution: {cfg.resolution} does not match the dataset "
                         f"{cfg.data_dir} ({source.resolution}x{source.resolution})")
    if cfg.lod_initial_resolution > source.resolution:
        raise ValueError(f"--lod_initial_resolution: {cfg.lod_initial_resolution} is larger than "
                         f"the dataset's resolution {source.resolution}")
    if cfg.use_labels and not source.label_size:
        raise ValueError(f"--use_labels: the dataset {cfg.data_dir} has no labels")


class _StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to checkpoint and stop; a second
    SIGINT interrupts at once."""

    def __init__(self, log):
        self.signum = None
        self._log = log
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self._log(f"Received {signal.Signals(signum).name}: saving a checkpoint and stopping "
                  f"(press Ctrl-C again to abort without saving)")

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _Run:
    """State of one `train` call: trainer, run directory, writers, timers."""

    def __init__(self, cfg, source, strategy, log_stream):
        self.cfg = cfg
        self.source = source
        self.strategy = strategy
        self.chief = is_chief(strategy)
        self.schedule = cfg.schedule(source.resolution, strategy.num_replicas_in_sync)
        self.schedule.check_minibatches()
        self.log = summaries.RunLog(stream=log_stream)
        self.metric_names = check_metrics(cfg, source)
        self.trainer = GanTrainer(cfg, strategy, source.resolution, source.num_channels,
                                  source.label_size, source.labels)
        self.multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        # Only the chief looks at the results directory (the other workers may not share its
        # file system); it broadcasts the restored state to them (see `open`).
        self.resume_dir = resolve_resume(cfg) if self.chief else None
        if self.resume_dir:
            self.run_dir = self.resume_dir
        elif self.chief:
            self.run_dir = create_run_dir(cfg.results_dir, cfg.run_desc)
        else:
            self.run_dir = None
        self.saved_checkpoint = False
        self.tensorboard = None
        self.progress = summaries.ProgressBar()
        self.tick_stats = collections.defaultdict(list)
        self.grid_size = cfg.grid_size or summaries.grid_shape(source.resolution)

    # -- files ---------------------------------------------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.run_dir, *parts)

    def open(self, flags):
        network = self.trainer.network_json()
        if self.chief:
            self.log.open(self._path(LOG_FILE))
            if self.resume_dir:
                self._check_network(network)
            else:
                write_json_atomic(self._path(NETWORK_JSON), network)
                write_json_atomic(self._path(FLAGS_JSON), flags)
            self.tensorboard = summaries.TensorBoard(self.run_dir)
        else:
            self.tensorboard = summaries.TensorBoard(None)
        self.manager = None
        if self.chief:
            self.manager = tf.train.CheckpointManager(
                self.trainer.checkpoint, self._path(CHECKPOINT_DIR),
                max_to_keep=self.cfg.keep_checkpoints)
        if self.resume_dir:
            path = self.manager.latest_checkpoint
            self.trainer.checkpoint.restore(path).assert_existing_objects_matched()
            state = self.trainer.state.values()
            self.log(f"Resuming {self.run_dir} from {os.path.basename(path)} at kimg "
                     f"{state['nimg'] / 1000:.1f}")
        elif self.chief:
            self.log(f"Saving results to {self.run_dir}")
        if self.multi_worker and self.cfg.resume:
            self.trainer.broadcast_from_chief(self.chief)
        # True on every worker when the chief resumed (the state says a phase was applied).
        self.resumed = float(self.trainer.state.prev_lod.numpy()) >= 0

    def _check_network(self, network):
        path = self._path(NETWORK_JSON)
        try:
            with open(path, encoding="utf-8") as file:
                stored = json.load(file)
        except (OSError, ValueError) as error:
            raise TrainingError(f"--resume: cannot read {path}: {error}") from None
        if _normalized(stored) != _normalized(network):
            raise TrainingError(f"--resume: the networks in {path} differ from the ones the flags "
                                f"and dataset describe (check --fmap_base, --fmap_max, "
                                f"--latent_size, --use_labels, --data_dir)")

    def save_checkpoint(self):
        """Saves a checkpoint; returns its path. Every worker saves (TensorFlow's pattern for
        MultiWorkerMirroredStrategy): the non-chief workers into a temporary directory that is
        deleted at once, so only the chief's checkpoint remains."""
        self.saved_checkpoint = True
        if self.manager is not None:
            try:
                return self.manager.save()
            except (OSError, tf.errors.OpError) as error:
                last = self.manager.latest_checkpoint
                kept = (f"the last complete checkpoint {last} is intact" if last
                        else "no earlier checkpoint exists")
                raise TrainingError(
                    f"cannot write a checkpoint to {self._path(CHECKPOINT_DIR)} (disk full or not "
                    f"writable?): {str(error).strip().splitlines()[0][:300]}; {kept}") from None
        scratch = tempfile.mkdtemp(prefix="progan-worker-checkpoint-")
        try:
            return self.trainer.checkpoint.write(os.path.join(scratch, "ckpt"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # -- maintenance ---------------------------------------------------------------------------

    def setup_grid(self):
        count = self.grid_size[0] * self.grid_size[1]
        dataset = self.source.dataset(self.source.resolution, count, 0, None)
        reals, labels = next(iter(dataset))
        self.grid_labels = labels.numpy()
        rng = np.random.default_rng(self.cfg.seed)
        self.grid_latents = rng.standard_normal((count, self.trainer.latent_size)).astype(
            np.float32)
        if self.chief:
            grid = summaries.save_grid(reals.numpy(), self._path("reals.png"), self.grid_size)
            self.tensorboard.image("Samples/reals", grid, 0)

    def snapshot_grid(self, nimg, resolution):
        if not self.chief:
            return
        images = self.trainer.render(self.grid_latents, self.grid_labels, resolution)
        grid = summaries.save_grid(images, self._path(summaries.fakes_filename(nimg // 1000)),
                                   self.grid_size, self.source.resolution)
        self.tensorboard.image("Samples/fakes", grid, nimg)
        if self.cfg.architecture == "stylegan":
            self.snapshot_style_mixing(nimg, resolution)

    def snapshot_style_mixing(self, nimg, resolution):
        """StyleGAN's figure-3 grid from the EMA generator: `mixKKKKKK.png` and
        Samples/style_mixing. Columns give the coarse styles (layers 0-3, at most half of the
        layers in use), rows the rest."""
        columns, rows = MIXING_GRID_COLUMNS, MIXING_GRID_ROWS
        rng = np.random.default_rng(self.cfg.seed + 1)
        latents = rng.standard_normal((columns + rows, self.trainer.latent_size)).astype(
            np.float32)
        layers = range(min(4, stylegan.num_layers_at(resolution) // 2))
        tiles = self.trainer.style_mixing_tiles(latents[:columns], latents[columns:], layers,
                                                resolution, self.grid_labels[:1])
        grid = summaries.save_grid(tiles, self._path(summaries.mixing_filename(nimg // 1000)),
                                   (columns + 1, rows + 1), self.source.resolution)
        self.tensorboard.image("Samples/style_mixing", grid, nimg)

    def run_metrics(self, nimg, resolution):
        """Computes --metrics on the EMA generator (only once it is fully grown)."""
        if not self.metric_names or not self.chief:
            return
        if resolution != self.source.resolution:
            return
        from progan_tf import metrics as metrics_lib
        reals = metrics_lib.RealImages(self.cfg.data_dir, mirror=self.cfg.mirror_augment,
                                       seed=self.cfg.seed)
        generator = metrics_lib.generator_from_network(self.trainer.generator_ema, resolution)
        results = metrics_lib.compute_metrics(self.metric_names, generator=generator, reals=reals,
                                              num=self.cfg.metrics_num or None,
                                              seed=self.cfg.seed, progress_stream=None)
        metrics_lib.append_jsonl(self._path("metrics.jsonl"), results, kimg=nimg / 1000.0)
        metrics_lib.write_tensorboard(self.tensorboard.writer, results, step=nimg)
        for line in metrics_lib.format_results(results):
            self.log(line)

    def export(self, resolution):
        """Exports the EMA generator at `resolution` as a SavedModel; returns its directory."""
        return export_generator(self.trainer.generator_ema, self._path(EXPORT_DIR),
                                self.cfg.export_model_name, resolution,
                                meta={"training_kimg": self.trainer.state.nimg.numpy() / 1000,
                                      "flags": self.cfg.to_json_dict()})


def export_generator(generator, out_dir, model_name, resolution, meta=None):
    """Writes `out_dir/<model_name>/<version>` (next integer version) with a `serving_default`
    signature latents [N, latent_size] (+ labels [N, L]) -> images [N, r, r, C] in [-1, 1]."""
    from exports import saved_model  # the export code of the project
    return saved_model.export_generator(generator, out_dir, model_name, meta=meta,
                                        resolution=resolution)


def train(cfg, source=None, strategy=None, flags=None, log_stream=None):
    """Runs (or resumes) training as `cfg` describes; returns a TrainResult.

    source: data source (default: the dataset directory of cfg.data_dir); strategy: a
    tf.distribute strategy (default from cfg.strategy); flags: the dict written to flags.json
    (default cfg.to_json_dict()).
    """
    try:
        if strategy is None and cfg.strategy == "multi_worker":  # before any TensorFlow op
            strategy = make_strategy(cfg.strategy, cfg.worker_timeout_sec)
        if source is None:
            source = open_source(cfg, lambda message: print(message, file=log_stream or sys.stdout,
                                                            flush=True))
        check_data(cfg, source)
        strategy = (strategy if strategy is not None
                    else make_strategy(cfg.strategy, cfg.worker_timeout_sec))
        if cfg.xla and not isinstance(strategy, tf.distribute.OneDeviceStrategy):
            raise ValueError("--xla: jit compilation needs --strategy=one_device (it fails "
                             "inside MirroredStrategy.run)")
        run = _Run(cfg, source, strategy, log_stream)
    except TrainingError:
        raise
    except ValueError as error:  # bad flags or data: one clear line, before any work
        raise TrainingError(str(error)) from error
    try:
        run.open(flags if flags is not None else cfg.to_json_dict())
        with _StopRequest(run.log) as stop:
            return _loop(run, stop)
    except tf.errors.OpError as error:
        if not run.multi_worker:
            raise
        where = run.run_dir or cfg.results_dir
        raise TrainingError(
            f"--strategy=multi_worker: lost a peer worker ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0][:300]}); stopped. Restart every worker with "
            f"--resume=auto to continue from the last checkpoint in {where}") from None
    finally:
        if run.tensorboard is not None:
            run.tensorboard.close()
        run.progress.clear()
        run.log.close()


def _loop(run, stop):
    cfg, trainer, state, log = run.cfg, run.trainer, run.trainer.state, run.log
    schedule = run.schedule
    total_nimg = int(round(cfg.total_kimg * 1000))
    values = state.values()
    nimg, tick, tick_start_nimg = values["nimg"], values["tick"], values["tick_start_nimg"]
    data_position = values["data_position"]
    run.setup_grid()
    resumed = run.resumed
    if not resumed:
        phase = schedule.at(0.0)
        trainer.apply_phase(phase)
        run.snapshot_grid(0, phase.resolution)
    train_start = time.time() - values["train_seconds"]
    tick_start_time = time.time()
    maintenance_start = time.time()
    maintenance_sec = 0.0
    iterator, iterator_key = None, None
    while nimg < total_nimg:
        phase = schedule.at(nimg / 1000.0)
        trainer.apply_phase(phase)
        key = (phase.resolution, phase.minibatch)
        if key != iterator_key:
            def dataset_fn(ctx, res=phase.resolution, batch=phase.minibatch, start=data_position):
                return run.source.dataset(res, batch, start, ctx)

            iterator, iterator_key = iter(trainer.distribute(dataset_fn)), key
        beta = ema_beta_for(cfg, phase.minibatch)
        applied = {"d": [], "g": []}
        try:
            for _ in range(cfg.minibatch_repeats):
                for _ in range(cfg.d_repeats):
                    stats, ok = trainer.d_step(next(iterator), phase.resolution, phase.minibatch,
                                               beta)
                    applied["d"].append(ok)
                    _collect(run.tick_stats, stats)
                    nimg += phase.minibatch
                    data_position += phase.minibatch
                stats, ok = trainer.g_step(phase.resolution, phase.minibatch)
                applied["g"].append(ok)
                _collect(run.tick_stats, stats)
        except tf.errors.InvalidArgumentError as error:
            where = _bad_record(error)
            if where is None:
                raise
            # The weights hold every completed D step: store the position after them.
            state.assign(nimg=nimg, data_position=data_position,
                         train_seconds=time.time() - train_start)
            path = run.save_checkpoint()
            raise TrainingError(f"bad training data: {where}; stopped at kimg {nimg / 1000:.1f} "
                                f"with checkpoint {path}. Rebuild or repair the dataset "
                                f"(python -m data_tools verify) before resuming.") from None
        state.assign(nimg=nimg, data_position=data_position)
        _count_skipped(state, applied)
        in_a_row = max(state.d_nonfinite_in_a_row.numpy(), state.g_nonfinite_in_a_row.numpy())
        # Under --mixed_precision the first overflows only lower the loss scale from 2^64.
        limit = cfg.max_nonfinite_steps + (int(LOSS_SCALE_INIT_LOG2) if cfg.mixed_precision else 0)
        if in_a_row >= limit:
            state.train_seconds.assign(time.time() - train_start)
            path = run.save_checkpoint()
            raise TrainingError(
                f"{in_a_row} training steps in a row had non-finite gradients and were skipped "
                f"(at kimg {nimg / 1000:.1f}); stopped. The last good state is in {path}; lower "
                f"the learning rate or check the data before resuming.")
        run.progress.update((nimg - tick_start_nimg) / (phase.tick_kimg * 1000.0),
                            f"tick {tick + 1} kimg {nimg / 1000:.1f} lod {phase.lod:.2f}")
        done = nimg >= total_nimg
        if nimg >= tick_start_nimg + phase.tick_kimg * 1000 or done:
            tick += 1
            now = time.time()
            tick_nimg = nimg - tick_start_nimg
            tick_sec = now - tick_start_time
            total_sec = now - train_start
            maintenance_sec = max(tick_start_time - maintenance_start, 0.0)
            maintenance_start = now
            run.progress.clear()
            log(summaries.progress_line(
                tick, nimg / 1000.0, phase.lod, phase.resolution, phase.minibatch, total_sec,
                tick_sec, tick_sec / max(tick_nimg / 1000.0, 1e-9), tick_nimg / max(tick_sec, 1e-9),
                maintenance_sec))
            scalars = {tag: float(np.mean([v.numpy() for v in vals]))
                       for tag, vals in run.tick_stats.items()}
            run.tick_stats.clear()
            scalars.update({
                "Progress/tick": tick, "Progress/kimg": nimg / 1000.0, "Progress/lod": phase.lod,
                "Progress/resolution": phase.resolution, "Progress/alpha": phase.fade_alpha,
                "Progress/minibatch": phase.minibatch, "Train/lr_G": phase.g_lrate,
                "Train/lr_D": phase.d_lrate,
                "Train/skipped_steps": state.skipped_steps.numpy().item(),
                "Timing/total_sec": total_sec, "Timing/sec_per_tick": tick_sec,
                "Timing/sec_per_kimg": tick_sec / max(tick_nimg / 1000.0, 1e-9),
                "Timing/img_per_sec": tick_nimg / max(tick_sec, 1e-9),
                "Timing/maintenance_sec": maintenance_sec})
            run.tensorboard.scalars(scalars, nimg)
            tick_start_nimg = nimg
            state.assign(tick=tick, tick_start_nimg=tick_start_nimg,
                         train_seconds=time.time() - train_start)
            if tick % cfg.image_snapshot_ticks == 0 or done:
                run.snapshot_grid(nimg, phase.resolution)
            if tick % cfg.metrics_ticks == 0 or done:
                run.run_metrics(nimg, phase.resolution)
            if tick % cfg.checkpoint_ticks == 0 or done:
                run.save_checkpoint()
            run.tensorboard.flush()
            tick_start_time = time.time()
        if stop.signum is not None and not done:
            state.train_seconds.assign(time.time() - train_start)
            path = run.save_checkpoint()
            run.progress.clear()
            log(f"Stopped at kimg {nimg / 1000:.1f}; checkpoint {path}. Continue with "
                f"--resume={run.run_dir}")
            return TrainResult(run.run_dir, "interrupted", nimg / 1000.0, signal=stop.signum)
    # The resolution trained last (the schedule at nimg may already name the next one).
    last_lod = max(float(state.prev_lod.numpy()), 0.0)
    resolution = schedule_lib.resolution_at_lod(last_lod, schedule.resolution)
    if not run.saved_checkpoint and not resumed:
        run.save_checkpoint()
    export_dir = None
    if run.chief:
        if cfg.export:
            export_dir = run.export(resolution)
            log(f"Exported the EMA generator to {export_dir}")
        summaries.write_atomic(os.path.join(run.run_dir, DONE_FILE), b"")
    log(f"Training done at kimg {nimg / 1000:.1f}")
    return TrainResult(run.run_dir, "done", nimg / 1000.0, export_dir=export_dir)


def _bad_record(error):
    """"<file>: record <i> at byte offset <o> ..." from a data reader error, else None."""
    match = re.search(r"([^\s\[]+: record \d+ at byte offset \d+ (?:cannot be read|does not hold)"
                      r"[^\]\n]*)", str(error))
    return match.group(1).rstrip(" .'\"") if match else None


def _count_skipped(state, applied):
    """Updates the skipped-step total and the per-network runs of consecutive skipped steps."""
    for network, flags in applied.items():
        counter = getattr(state, f"{network}_nonfinite_in_a_row")
        in_a_row = counter.numpy().item()
        for ok in flags:
            if bool(ok):
                in_a_row = 0
            else:
                in_a_row += 1
                state.skipped_steps.assign_add(1)
        counter.assign(in_a_row)


def _collect(store, stats):
    for tag, value in stats.items():
        store[tag].append(value)
