"""The GAN steps (`GanTrainer`): networks, optimizers, generator EMA and the distributed
discriminator and generator steps of one run.

One training iteration, as in [PG] train.py: `d_repeats` discriminator steps, each followed by the
generator EMA update, then one generator step.

A step runs in two `strategy.run` calls (SPEC 10): the first computes each replica's gradients and
returns them with the number of non-finite entries; outside the replicas the counts are summed
and a `tf.cond` runs the second `strategy.run`, which applies the gradients (Keras sums them over
the replicas), only when every replica's gradients are finite. Each replica's loss is its share of
the global-batch mean, so the summed gradient is the gradient of the global mean. Randomness
comes from `rng.RandomStreams`, keyed by the step counters of the TrainingState, which the
steps advance in their graph. `train_steps` runs several minibatches in one tf.function call
(a `tf.while_loop` over the same step bodies), `d_step` / `g_step` one step per call.
"""

import collections

import keras
import numpy as np
import tensorflow as tf

from progan_tf import architectures
from progan_tf import data
from progan_tf import layers
from progan_tf import losses
from progan_tf import schedule as schedule_lib
from progan_tf.layers import conv as conv_lib
from progan_tf.training import distribute
from progan_tf.training import init_from as init_from_lib
from progan_tf.training import precision as precision_lib
from progan_tf.training import rng
from progan_tf.training.loss_scale import LossScale, count_nonfinite
from progan_tf.training.run_dir import TrainingError
from progan_tf.training.state import TrainingState

# Stats of a step that are not TensorBoard scalars: the global-batch mean of w_0 [D] (styled
# generators; the step moves dlatent_avg towards it).
DLATENT_MEAN = "dlatent_mean"
MIXING_CUTOFF = "Train/mixing_cutoff"


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


def build_networks(arch, g_kwargs, d_kwargs, seed, dtype):
    """(generator, EMA generator, discriminator) of `arch`; call in strategy.scope().

    The initial weights are a function of `seed` (the EMA generator starts as a copy of the
    generator); dtype: Keras dtype policy name of all three. Called with training=True the
    generator draws fresh noise (styled generators), the EMA generator called with
    training=False renders its fixed noise.
    """
    g_seed = layers.derive_seed(seed, "generator")
    generator = arch.generator_class(**g_kwargs, seed=g_seed, dtype=dtype, name="generator")
    generator_ema = arch.generator_class(**g_kwargs, seed=g_seed, dtype=dtype,
                                         name="generator_ema")
    discriminator = arch.build_discriminator(
        **d_kwargs, seed=layers.derive_seed(seed, "discriminator"), dtype=dtype,
        name="discriminator")
    return generator, generator_ema, discriminator


class GanTrainer:
    """Networks, optimizers, EMA and the distributed D/G steps of one training run.

    cfg: config.TrainConfig. resolution / num_channels / label_size: of the data (labels are used
    only when cfg.use_labels). labels: float32 [N, L] label table the generator's random labels
    are drawn from (None without labels). strategy: a tf.distribute strategy.
    init: with cfg.init_from, its `init_from.InitFrom` (default: `init_from.prepare(cfg)`): the
    architecture and network configs come from it (labels when the pickle has them); a new run
    takes G, D and the EMA generator from the pickle's G, D and Gs and starts at the images
    shown where the schedule reaches the pickle's lod (the checkpoint replaces both when
    resuming). Raises ValueError, before building anything, when the data does not fit it.
    """

    def __init__(self, cfg, strategy, resolution, num_channels, label_size=0, labels=None,
                 init=None):
        self.cfg = cfg
        self.strategy = strategy
        self.arch = architectures.get(cfg.architecture)
        self.num_replicas = strategy.num_replicas_in_sync
        self.label_size = label_size if cfg.use_labels else 0
        if cfg.init_from and init is None:
            init = init_from_lib.prepare(cfg)
        start_nimg = 0
        if init is not None:
            init_from_lib.check_data(init, resolution, num_channels, label_size, cfg.data_dir)
            self.arch = architectures.get(init.architecture)
            self.label_size = init.label_size
            if init.networks is not None:
                start_nimg = init_from_lib.start_nimg(
                    cfg.build_schedule(resolution, self.num_replicas), init.lod, cfg.total_kimg)
        self.labels = tf.constant(np.asarray(labels, np.float32)) if self.label_size else None
        self.loss = losses.LOSSES[cfg.loss]
        self.loss_scale = LossScale(precision_lib.loss_scaling(cfg.precision))
        self.random = rng.RandomStreams(cfg.seed, self.num_replicas)
        # The narrowest convolution whose gradients are GEMMs (None: TensorFlow's everywhere).
        self.gemm_min_channels = conv_lib.gemm_min_channels(cfg.conv_gradients,
                                                            strategy.extended.worker_devices)
        self.trace_counts = collections.Counter()
        self._step_fns = {}
        self._stat_tags = {}  # (resolution, minibatch) -> tags of train_steps' stats
        if init is not None:
            g_kwargs, d_kwargs = init.network_kwargs()
        else:
            g_kwargs, d_kwargs = self.arch.network_kwargs(cfg, resolution, num_channels,
                                                          self.label_size)
        with strategy.scope():
            self.generator, self.generator_ema, self.discriminator = build_networks(
                self.arch, g_kwargs, d_kwargs, cfg.seed, precision_lib.policy(cfg.precision))
            self.g_optimizer = self._adam("g_optimizer")
            self.d_optimizer = self._adam("d_optimizer")
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self._ema_pairs = list(zip(self.generator_ema.weights, self.generator.weights))
        for ema, live in self._ema_pairs:
            if tuple(ema.shape) != tuple(live.shape):
                raise TrainingError(f"EMA generator weight {ema.path} {ema.shape} does not match "
                                    f"{live.path} {live.shape}")
            ema.assign(live)
        self.state = TrainingState()
        if init is not None and init.networks is not None:
            self._init_weights(init.networks)
            init.networks = None  # copied: a 1024 file's three networks need not stay in memory
            self.state.assign(nimg=start_nimg, tick_start_nimg=start_nimg)
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator, generator_ema=self.generator_ema,
            discriminator=self.discriminator, g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer, state=self.state)

    def _init_weights(self, loaded):
        """G, D and the EMA generator from an `official.load` result's G, D and Gs."""
        for source, target, what in ((loaded.G, self.generator, "G"),
                                     (loaded.D, self.discriminator, "D"),
                                     (loaded.Gs, self.generator_ema, "Gs")):
            init_from_lib.copy_weights(source, target, what)

    def _adam(self, name):
        return keras.optimizers.Adam(learning_rate=self.cfg.lrate_base, beta_1=self.cfg.adam_beta1,
                                     beta_2=self.cfg.adam_beta2, epsilon=self.cfg.adam_epsilon,
                                     name=name)

    def float32_generator_ema(self):
        """The EMA generator computing in float32, for exports: itself when training runs in
        float32, else a float32 twin built from its config holding a copy of its (float32)
        weights, made outside the strategy's scope."""
        if self.generator_ema.dtype_policy.name == "float32":
            return self.generator_ema
        twin = type(self.generator_ema).from_config(self.generator_ema.get_config())
        if len(twin.weights) != len(self.generator_ema.weights):
            raise TrainingError(f"float32 copy of the EMA generator has {len(twin.weights)} "
                                f"weights, the generator {len(self.generator_ema.weights)}")
        for target, source in zip(twin.weights, self.generator_ema.weights):
            target.assign(tf.convert_to_tensor(source))
        return twin

    @property
    def latent_size(self):
        return self.generator.latent_size

    def network_json(self):
        """The run directory's network.json contents."""
        return {"architecture": self.arch.name,
                "generator": self.generator.get_config(),
                "discriminator": self.discriminator.get_config()}

    def checkpoint_variables(self):
        """Every variable the checkpoint saves, in a fixed order."""
        out = []
        for module in (self.generator, self.generator_ema, self.discriminator):
            out.extend(module.weights)
        for optimizer in (self.g_optimizer, self.d_optimizer):
            out.extend(optimizer.variables)
        return out + self.state.variables_in_order()

    def broadcast_from_chief(self, chief):
        """Gives every worker the chief's checkpointed variables (every worker calls it)."""
        distribute.broadcast_from_chief(self.strategy, self.checkpoint_variables(), chief)

    def distribute(self, dataset_fn):
        """Distributed dataset from `dataset_fn(input_context)`."""
        return self.strategy.distribute_datasets_from_function(dataset_fn)

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

    # -- per-replica computations ------------------------------------------------------------

    def _generator_inputs(self, latents, labels):
        return latents if not self.label_size else [latents, labels]

    def _fakes(self, latents, labels, counter, stream, resolution, minibatch):
        """Training forward of the generator: (images [n, r, r, C], stats). Styled generators
        mix in a second latent's styles (style_mixing_prob); the stats hold this replica's
        share of the global-batch mean of w_0 and of the crossover layer."""
        mixing = None
        if self.arch.styles and self.cfg.style_mixing_prob > 0:
            second = self.random.mixing_latents(counter, stream, minibatch, self.latent_size)
            mixing = architectures.StyleMixing(self._generator_inputs(second, labels),
                                               self.random.mixing_key(counter, stream),
                                               self.cfg.style_mixing_prob)
        images, extras = self.arch.fakes(self.generator, self._generator_inputs(latents, labels),
                                         resolution, mixing)
        stats = {}
        if "dlatents_w0" in extras:
            w0 = tf.cast(extras["dlatents_w0"], tf.float32)
            stats[DLATENT_MEAN] = tf.reduce_sum(w0, axis=0) / minibatch
        if "mixing_cutoff" in extras:
            stats[MIXING_CUTOFF] = tf.cast(extras["mixing_cutoff"], tf.float32) / self.num_replicas
        return images, stats

    def _d_replica(self, *args, **kwargs):
        """Per-replica D loss and gradients: (grads, stats of global-batch means, non-finite).
        The convolutions differentiate as --conv_gradients says (entered here: a replica may
        be traced in a thread of its own)."""
        with conv_lib.gemm_gradients(self.gemm_min_channels):
            return self._d_replica_loss(*args, **kwargs)

    def _g_replica(self, *args, **kwargs):
        """Per-replica G loss and gradients, as `_d_replica`."""
        with conv_lib.gemm_gradients(self.gemm_min_channels):
            return self._g_replica_loss(*args, **kwargs)

    def _d_replica_loss(self, reals, labels, counter, resolution, minibatch):
        d_model = self.discriminator.model_for(resolution)
        d_vars = self._d_vars(resolution)
        reals = data.crossfade_reals(tf.cast(reals, tf.float32), self.discriminator.fade_alpha)
        latents = self.random.latents(counter, rng.D_LATENTS, minibatch, self.latent_size)
        fakes, generator_stats = self._fakes(latents, labels, counter, rng.D_LATENTS, resolution,
                                             minibatch)

        def critic(images):
            return losses.split_scores(d_model(images, training=True))[0]

        with tf.GradientTape() as tape:
            real_scores, real_logits = losses.split_scores(d_model(reals, training=True))
            fake_scores, fake_logits = losses.split_scores(d_model(fakes, training=True))
            batch = losses.DiscriminatorBatch(
                critic, reals, fakes, real_scores, fake_scores,
                interpolation=lambda: self.random.interpolation(counter, minibatch),
                image_scale=resolution / self.discriminator.resolution)
            per_sample, stats = self.loss.d_loss(batch, self.cfg)
            if self.label_size:
                label_real = losses.label_penalty(labels, real_logits)
                label_fake = losses.label_penalty(labels, fake_logits)
                per_sample += (label_real + label_fake) * self.cfg.cond_weight
                stats.update({"Loss/label_real": label_real, "Loss/label_fake": label_fake})
            scale = self.loss_scale.scale(self.state.d_loss_scale_log2)
            scaled_loss = LossScale.scaled(tf.reduce_sum(per_sample) / minibatch, scale)
        grads = LossScale.unscaled_gradients(tape.gradient(scaled_loss, d_vars), d_vars, scale)
        stats.update({"Loss/D": per_sample, "Score/real": real_scores, "Score/fake": fake_scores})
        stats = {tag: tf.reduce_sum(value) / minibatch for tag, value in stats.items()}
        stats.update(generator_stats)
        return grads, stats, count_nonfinite(grads)

    def _g_replica_loss(self, counter, resolution, minibatch):
        d_model = self.discriminator.model_for(resolution)
        g_vars = self._g_vars(resolution)
        latents = self.random.latents(counter, rng.G_LATENTS, minibatch, self.latent_size)
        labels = self.random.labels(counter, self.labels, minibatch) if self.label_size else None
        with tf.GradientTape() as tape:
            fakes, stats = self._fakes(latents, labels, counter, rng.G_LATENTS, resolution,
                                       minibatch)
            fake_scores, fake_logits = losses.split_scores(d_model(fakes, training=True))
            per_sample = self.loss.g_loss(fake_scores)
            if self.label_size:
                per_sample += losses.label_penalty(labels, fake_logits) * self.cfg.cond_weight
            scale = self.loss_scale.scale(self.state.g_loss_scale_log2)
            scaled_loss = LossScale.scaled(tf.reduce_sum(per_sample) / minibatch, scale)
        grads = LossScale.unscaled_gradients(tape.gradient(scaled_loss, g_vars), g_vars, scale)
        stats["Loss/G"] = tf.reduce_sum(per_sample) / minibatch
        return grads, stats, count_nonfinite(grads)

    def _g_vars(self, resolution):
        """Generator variables in use at `resolution` (the optimizer was built over all)."""
        return self.generator.model_for(resolution).trainable_variables

    def _d_vars(self, resolution):
        return self.discriminator.model_for(resolution).trainable_variables

    # -- distributed steps -------------------------------------------------------------------

    def _sum(self, value):
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

    def _reduce(self, stats):
        return {tag: self._sum(value) for tag, value in stats.items()}

    def _apply_if_finite(self, optimizer, variables, grads, count, after=None):
        """Second strategy.run, only when the summed non-finite count is 0 (SPEC 10)."""
        count = self._sum(count)

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

    def _absorb_generator_stats(self, stats):
        """Moves dlatent_avg towards the global-batch mean of w_0 (styled generators) and
        drops that mean from the stats."""
        mean = stats.pop(DLATENT_MEAN, None)
        if mean is not None:
            avg = self.generator.dlatent_avg
            avg.assign(mean + self.cfg.dlatent_avg_beta * (avg - mean))
        return stats

    def _step_fn(self, kind, resolution, minibatch, make, jit_compile=None):
        """The tf.function of `make(resolution, minibatch)`, made once per kind, resolution and
        minibatch. The steps write their control flow as tf.cond / tf.while_loop themselves, so
        AutoGraph is off: converting every function the trace calls took a third of the tracing
        time (about 20 s -> 13 s for the three resolutions of a tiny 4 -> 16 run)."""
        key = (kind, resolution, minibatch)
        if key not in self._step_fns:
            self._step_fns[key] = tf.function(make(resolution, minibatch),
                                              jit_compile=jit_compile, autograph=False)
        return self._step_fns[key]

    def _compiled(self, kind, resolution, minibatch, body):
        """`body` itself, or with --xla its jit-compiled tf.function (one per kind, resolution
        and minibatch), which the one-step and several-step functions both call."""
        if not self.cfg.xla:
            return body
        return self._step_fn(kind, resolution, minibatch, lambda *_: body, jit_compile=True)

    def _d_body(self, resolution, minibatch):
        """One discriminator step for a graph (cross-replica context): `step(reals, labels,
        ema_beta)` computes every replica's gradients, applies their sum when all are finite,
        then the EMA; the loss scale and the TrainingState (D steps, images shown, data
        position, skipped steps) advance. It returns (stats, applied). With --xla it is a
        jit-compiled tf.function."""
        variables = self._d_vars(resolution)

        def d_body(reals, labels, ema_beta):
            grads, stats, count = self.strategy.run(
                self._d_replica, args=(reals, labels, self.state.d_steps.read_value()),
                kwargs=dict(resolution=resolution, minibatch=minibatch))
            applied = self._apply_if_finite(self.d_optimizer, variables, grads, count,
                                            after=lambda: self._update_ema(ema_beta))
            self.loss_scale.update(self.state.d_loss_scale_log2, applied)
            stats = self._absorb_generator_stats(self._reduce(stats))
            self.state.advance(minibatch)
            self.state.record_step("d", applied)
            return stats, applied

        return self._compiled("d_body", resolution, minibatch, d_body)

    def _g_body(self, resolution, minibatch):
        """One generator step for a graph, as `_d_body`: `step()` returns (stats, applied)."""
        variables = self._g_vars(resolution)

        def g_body():
            grads, stats, count = self.strategy.run(
                self._g_replica, args=(self.state.g_steps.read_value(),),
                kwargs=dict(resolution=resolution, minibatch=minibatch))
            applied = self._apply_if_finite(self.g_optimizer, variables, grads, count)
            self.loss_scale.update(self.state.g_loss_scale_log2, applied)
            stats = self._absorb_generator_stats(self._reduce(stats))
            self.state.record_step("g", applied)
            return stats, applied

        return self._compiled("g_body", resolution, minibatch, g_body)

    def _make_d_step(self, resolution, minibatch):
        body = self._d_body(resolution, minibatch)

        def d_step(reals, labels, ema_beta):
            self.trace_counts[("d_step", resolution)] += 1
            return body(reals, labels, ema_beta)

        return d_step

    def _make_g_step(self, resolution, minibatch):
        body = self._g_body(resolution, minibatch)

        def g_step():
            self.trace_counts[("g_step", resolution)] += 1
            return body()

        return g_step

    def d_step(self, batch, resolution, minibatch, ema_beta):
        """One discriminator step (+ EMA) on a distributed batch (reals, labels), one call.
        Returns (stats: {tag: scalar}, applied: bool tensor). Advances the TrainingState."""
        reals, labels = batch
        step = self._step_fn("d", resolution, minibatch, self._make_d_step)
        return step(reals, labels, tf.constant(ema_beta, tf.float32))

    def g_step(self, resolution, minibatch):
        """One generator step. Returns (stats, applied). Advances the TrainingState."""
        return self._step_fn("g", resolution, minibatch, self._make_g_step)()

    def _make_train_steps(self, resolution, minibatch):
        d_body = self._d_body(resolution, minibatch)
        g_body = self._g_body(resolution, minibatch)
        tags = self._stat_tags[(resolution, minibatch)] = []

        def one_minibatch(iterator, ema_beta):
            """d_repeats D steps on batches of `iterator`, then one G step; their stats as one
            vector (the tags of its entries go to `tags` when traced)."""
            named = []
            for _ in range(self.cfg.d_repeats):
                reals, labels = next(iterator)
                stats, _ = d_body(reals, labels, ema_beta)
                named.extend(sorted(stats.items()))
            stats, _ = g_body()
            named.extend(sorted(stats.items()))
            tags[:] = [tag for tag, _ in named]
            return tf.stack([tf.cast(value, tf.float32) for _, value in named])

        def train_steps(iterator, ema_beta, steps, limit):
            self.trace_counts[("train_steps", resolution)] += 1

            def more(done, sums):
                # The first minibatch always runs: a run resumed after it stopped at the limit
                # (new data, a lower learning rate) gets its chance, as before.
                del sums
                below_limit = self.state.nonfinite_in_a_row_tensor() < limit
                return tf.logical_and(done < steps, tf.logical_or(done == 0, below_limit))

            def step(done, sums):
                values = one_minibatch(iterator, ema_beta)
                # sums starts empty: padding it to the stats' length makes the first sum the
                # first minibatch's stats (their number is known only once this is traced).
                return done + 1, values + tf.pad(sums, [[0, tf.size(values) - tf.size(sums)]])

            return tf.while_loop(more, step, (tf.constant(0), tf.zeros([0])),
                                 shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])))

        return train_steps

    def train_steps(self, batches, resolution, minibatch, ema_beta, steps, nonfinite_limit):
        """Up to `steps` minibatches (each `d_repeats` D steps on batches of the distributed
        iterator `batches`, then one G step) in one tf.function call, so that the dispatch of a
        call is paid once (Keras' steps_per_execution). The math is that of as many `d_step` /
        `g_step` calls: the same counters key the random streams, every step is applied only
        when all replicas' gradients are finite, the EMA and loss scale follow each step. After
        its first minibatch the loop ends early once `nonfinite_limit` steps in a row were
        skipped.

        Returns ({tag: (sum over the steps, number of values)}, minibatches run)."""
        fn = self._step_fn("train_steps", resolution, minibatch, self._make_train_steps)
        done, sums = fn(batches, tf.constant(ema_beta, tf.float32), tf.constant(steps, tf.int32),
                        tf.constant(nonfinite_limit, tf.int64))
        done, sums = int(done), sums.numpy()
        stats = {}
        for tag, value in zip(self._stat_tags[(resolution, minibatch)] if done else (), sums):
            total, count = stats.get(tag, (0.0, 0))
            stats[tag] = (total + float(value), count + done)
        return stats, done

    # -- inspection (tests, debugging) ---------------------------------------------------------

    def d_gradients(self, batch, resolution, minibatch):
        """Summed D gradients over the replicas and the stats of one D step at the current D
        step counter, nothing applied or advanced. Returns ({variable path: gradient}, stats);
        the stats of a styled generator also hold DLATENT_MEAN."""
        reals, labels = batch
        return self._gradients("d", self._d_replica, self._d_vars(resolution),
                               (reals, labels, self.state.d_steps.read_value()), resolution,
                               minibatch)

    def g_gradients(self, resolution, minibatch):
        """As `d_gradients` for the generator step at the current G step counter."""
        return self._gradients("g", self._g_replica, self._g_vars(resolution),
                               (self.state.g_steps.read_value(),), resolution, minibatch)

    def _gradients(self, kind, replica_fn, variables, args, resolution, minibatch):
        def make(resolution, minibatch):
            def gradients(*args):
                grads, stats, _ = self.strategy.run(
                    replica_fn, args=args, kwargs=dict(resolution=resolution, minibatch=minibatch))
                return [self._sum(g) for g in grads], self._reduce(stats)
            return gradients

        grads, stats = self._step_fn(f"{kind}_gradients", resolution, minibatch, make)(*args)
        return {v.path: g for v, g in zip(variables, grads)}, stats
