"""The training loop (`train`): one iteration after another on the schedule, the end of each tick
(progress line, TensorBoard, grids, metrics, checkpoint), and the stop (done, signal, non-finite
steps, bad data, a lost worker), in that order below; then a write that fails (a full disk) and
the run directory's lock (`claim_run_dir`), held for the run's lifetime.

An iteration is `minibatch_repeats` times (`d_repeats` D steps, then one G step) at one schedule
phase, `steps_per_call` minibatches per tf.function call (GanTrainer.train_steps); the phase
(lod, fade-in alpha, minibatch, learning rates) is re-evaluated from the images shown before
each iteration. Every counter lives in the TrainingState, which the checkpoint saves.
"""

import collections
import contextlib
import dataclasses
import os
import re
import signal
import sys
import threading
import time

import tensorflow as tf

from exports import saved_model as export_lib
from exports.run_dir import ExportError
from progan_tf import metrics as metrics_lib
from progan_tf import schedule as schedule_lib
from progan_tf import summaries
from progan_tf.training import distribute
from progan_tf.training import run_dir as run_dir_lib
from progan_tf.training import snapshots as snapshots_lib
from progan_tf.training import sources
from progan_tf.training.run_dir import TrainingError
from progan_tf.training.steps import GanTrainer, ema_beta_for
from progan_tf.utils import run_lock
from progan_tf.utils.files import write_atomic
from progan_tf.utils.progress import ProgressBar, progress_line

__all__ = ["TrainResult", "TrainingError", "train"]


@dataclasses.dataclass
class TrainResult:
    """run_dir: the run directory; status: "done" or "interrupted"; kimg: images shown / 1000
    at the end; signal: the signal number when interrupted; export_dir: the SavedModel version
    written at the end (None without --export or on a non-chief worker)."""

    run_dir: str
    status: str
    kimg: float
    signal: int | None = None
    export_dir: str | None = None


def train(cfg, source=None, strategy=None, flags=None, log_stream=None, init=None):
    """Runs (or resumes) training as `cfg` describes; returns a TrainResult.

    source: data source (default: the dataset directory of cfg.data_dir); strategy: a
    tf.distribute strategy (default from cfg.strategy); flags: the dict written to flags.json
    (default cfg.to_json_dict()); log_stream: where messages go besides log.txt (stdout);
    init: with --init_from, its `init_from.InitFrom` (default: read by the trainer).
    """
    try:
        source, strategy = _source_and_strategy(cfg, source, strategy, log_stream)
        run = _Run(cfg, source, strategy, log_stream, init)
    except TrainingError:
        raise
    except ValueError as error:  # bad flags or data: one clear line, before any work
        raise TrainingError(str(error)) from error
    except tf.errors.OpError as error:  # the chief's status broadcast (see _Run)
        if strategy is None or not distribute.is_multi_worker(strategy):
            raise
        raise _lost_peer(error, cfg.results_dir) from None
    failed = True
    try:
        run.open(flags if flags is not None else cfg.to_json_dict())
        with _StopRequest(run.log) as stop:
            result = _loop(run, stop)
        failed = False
        return result
    except _WriteFailed as error:
        raise run.write_error(error) from None
    except tf.errors.OpError as error:
        if not run.multi_worker:
            raise
        raise _lost_peer(error, run.run_dir or cfg.results_dir) from None
    finally:
        run.close(after_error=failed)  # releases the run directory's lock


def _lost_peer(error, where):
    return TrainingError(
        f"--strategy=multi_worker: lost a peer worker ({type(error).__name__}: "
        f"{_first_line(error)}); stopped. Restart every worker with --resume=auto to "
        f"continue from the last checkpoint in {where}")


def _source_and_strategy(cfg, source, strategy, log_stream):
    if strategy is None and cfg.strategy == "multi_worker":  # before any TensorFlow op
        strategy = distribute.make_strategy(cfg.strategy, cfg.worker_timeout_sec)
    if source is None:
        source = sources.open_source(
            cfg, lambda message: print(message, file=log_stream or sys.stdout, flush=True))
    sources.check_data(cfg, source)
    if strategy is None:
        strategy = distribute.make_strategy(cfg.strategy, cfg.worker_timeout_sec)
    if cfg.xla and not isinstance(strategy, tf.distribute.OneDeviceStrategy):
        raise ValueError("--xla: jit compilation needs --strategy=one_device (it fails "
                         "inside MirroredStrategy.run)")
    return source, strategy


def _loop(run, stop):
    state, total_nimg = run.state, int(round(run.cfg.total_kimg * 1000))
    run.start()
    while _nimg(state) < total_nimg:
        phase = run.schedule.at(_nimg(state) / 1000.0)
        _iteration(run, phase)
        nimg, tick_nimg = _nimg(state), _nimg(state) - state.tick_start_nimg.numpy().item()
        done = nimg >= total_nimg
        run.progress.update(tick_nimg / (phase.tick_kimg * 1000.0),
                            f"tick {state.tick.numpy() + 1} kimg {nimg / 1000:.1f} "
                            f"lod {phase.lod:.2f}")
        if tick_nimg >= phase.tick_kimg * 1000 or done:
            _end_of_tick(run, phase, done)
        if stop.signum is not None and not done:
            return _stop(run, stop.signum)
    return _finish(run)


def _nimg(state):
    return state.nimg.numpy().item()


# ------------------------------------------------------------------------------------------------
# One iteration.


def _iteration(run, phase):
    """minibatch_repeats x (d_repeats D steps + 1 G step) at `phase`, --steps_per_call
    minibatches per tf.function call; the run stops when too many steps in a row were skipped
    for non-finite gradients (the calls end early then)."""
    cfg, trainer, state = run.cfg, run.trainer, run.state
    trainer.apply_phase(phase)
    batches = run.batches(phase)
    beta = ema_beta_for(cfg, phase.minibatch)
    limit = nonfinite_limit(run)
    per_call = cfg.steps_per_call or cfg.minibatch_repeats
    try:
        for _ in range(cfg.minibatch_repeats // per_call):
            stats, _ = trainer.train_steps(batches, phase.resolution, phase.minibatch, beta,
                                           per_call, limit)
            run.collect(stats)
            if state.nonfinite_in_a_row() >= limit:
                break
    except tf.errors.InvalidArgumentError as error:
        where = bad_record(error)
        if where is None:
            raise
        path = run.save_checkpoint()  # holds every completed D step and the position after it
        raise TrainingError(f"bad training data: {where}; stopped at kimg "
                            f"{_nimg(state) / 1000:.1f} with checkpoint {path}. Rebuild or repair "
                            f"the dataset (python -m data_tools verify) before resuming.") from None
    _check_nonfinite(run)


def bad_record(error):
    """"<file>: record <i> at byte offset <o> ..." from a data reader error, else None."""
    match = re.search(r"([^\s\[]+: record \d+ at byte offset \d+ (?:cannot be read|does not hold)"
                      r"[^\]\n]*)", str(error))
    return match.group(1).rstrip(" .'\"") if match else None


def nonfinite_limit(run):
    """Skipped steps in a row that stop the run: --max_nonfinite_steps, plus the overflows a
    float16 loss scale expects from its start."""
    return run.cfg.max_nonfinite_steps + run.trainer.loss_scale.nonfinite_allowance()


def _check_nonfinite(run):
    in_a_row = run.state.nonfinite_in_a_row()
    if in_a_row >= nonfinite_limit(run):
        path = run.save_checkpoint()
        raise TrainingError(
            f"{in_a_row} training steps in a row had non-finite gradients and were skipped "
            f"(at kimg {_nimg(run.state) / 1000:.1f}); stopped. The last good state is in {path}; "
            f"lower the learning rate or check the data before resuming.")


# ------------------------------------------------------------------------------------------------
# End of a tick.


def _end_of_tick(run, phase, done):
    """Progress line and TensorBoard scalars of the tick; grids, metrics and a checkpoint every
    so many ticks (and when done)."""
    cfg, state = run.cfg, run.state
    tick_nimg = _nimg(state) - state.tick_start_nimg.numpy().item()
    state.start_tick()
    tick, nimg = state.tick.numpy().item(), _nimg(state)
    timing = run.clock.end_tick(tick_nimg)
    run.progress.clear()
    run.log(progress_line(tick, nimg / 1000.0, phase.lod, phase.resolution, phase.minibatch,
                          timing["Timing/total_sec"], timing["Timing/sec_per_tick"],
                          timing["Timing/sec_per_kimg"], timing["Timing/img_per_sec"],
                          timing["Timing/maintenance_sec"]))
    scalars = {tag: total / count for tag, (total, count) in run.tick_stats.items() if count}
    run.tick_stats.clear()
    scalars.update(timing)
    scalars.update({
        "Progress/tick": tick, "Progress/kimg": nimg / 1000.0, "Progress/lod": phase.lod,
        "Progress/resolution": phase.resolution, "Progress/alpha": phase.fade_alpha,
        "Progress/minibatch": phase.minibatch, "Train/lr_G": phase.g_lrate,
        "Train/lr_D": phase.d_lrate, "Train/skipped_steps": state.skipped_steps.numpy().item()})
    run.tensorboard.scalars(scalars, nimg)
    if tick % cfg.image_snapshot_ticks == 0 or done:
        with _writing(run.run_dir):
            run.snapshots.fakes(nimg, phase.resolution)
    if tick % cfg.metrics_ticks == 0 or done:
        run.run_metrics(nimg, phase.resolution)
    if tick % cfg.checkpoint_ticks == 0 or done:
        run.save_checkpoint()
    run.tensorboard.flush()
    run.clock.start_tick()


class _Clock:
    """Wall-clock times of the run: training time over all sessions, the current tick, and the
    maintenance (grids, metrics, checkpoint) after the previous tick."""

    def __init__(self, train_seconds):
        now = time.time()
        self.train_start = now - train_seconds
        self.tick_start = self.maintenance_start = now

    def total(self):
        return time.time() - self.train_start

    def end_tick(self, tick_nimg):
        """Timing/* scalars of the tick that showed `tick_nimg` images."""
        now = time.time()
        tick_sec = now - self.tick_start
        maintenance_sec = max(self.tick_start - self.maintenance_start, 0.0)
        self.maintenance_start = now
        return {"Timing/total_sec": now - self.train_start, "Timing/sec_per_tick": tick_sec,
                "Timing/sec_per_kimg": tick_sec / max(tick_nimg / 1000.0, 1e-9),
                "Timing/img_per_sec": tick_nimg / max(tick_sec, 1e-9),
                "Timing/maintenance_sec": maintenance_sec}

    def start_tick(self):
        self.tick_start = time.time()


# ------------------------------------------------------------------------------------------------
# Stop.


def _stop(run, signum):
    """After SIGINT/SIGTERM: a checkpoint, and how to continue."""
    path = run.save_checkpoint()
    run.progress.clear()
    kimg = _nimg(run.state) / 1000.0
    run.log(f"Stopped at kimg {kimg:.1f}; checkpoint {path}. Continue with "
            f"--resume={run.run_dir}")
    return TrainResult(run.run_dir, "interrupted", kimg, signal=signum)


def _finish(run):
    """At --total_kimg: the last checkpoint, the export and DONE_FILE."""
    kimg = _nimg(run.state) / 1000.0
    # The resolution trained last (the schedule at nimg may already name the next one).
    last_lod = max(float(run.state.prev_lod.numpy()), 0.0)
    resolution = schedule_lib.resolution_at_lod(last_lod, run.schedule.resolution)
    if not run.checkpoints.saved and not run.resumed:
        run.save_checkpoint()
    export_dir = None
    if run.chief:
        if run.cfg.export:
            with _writing(run.export_dir, (OSError, tf.errors.OpError, ExportError)):
                export_dir = run.export(resolution)
            run.log(f"Exported the EMA generator to {export_dir}")
        done_file = os.path.join(run.run_dir, run_dir_lib.DONE_FILE)
        with _writing(done_file):
            write_atomic(done_file, b"")
    run.log(f"Training done at kimg {kimg:.1f}")
    return TrainResult(run.run_dir, "done", kimg, export_dir=export_dir)


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


def _first_line(error):
    return str(error).strip().splitlines()[0][:300]


# ------------------------------------------------------------------------------------------------
# Writes into the run directory that fail (a full disk, no permission): one line naming the file.


class _WriteFailed(Exception):
    """A write into the run directory failed; `train` turns it into a TrainingError that also
    names the last complete checkpoint (see _Run.write_error)."""

    def __init__(self, path, error):
        if isinstance(error, ExportError):  # its message already says where and why
            message = str(error)
        else:
            message = (f"cannot write {path} (disk full or not writable?): "
                       f"{run_dir_lib.write_failure_reason(error)}")
        super().__init__(message)


@contextlib.contextmanager
def _writing(path, errors=(OSError,)):
    """Turns `errors` raised inside into _WriteFailed naming the OSError's file, else `path`."""
    try:
        yield
    except errors as error:
        raise _WriteFailed(getattr(error, "filename", None) or path, error) from None


class _RunLog(summaries.RunLog):
    """summaries.RunLog whose failed writes of log.txt raise _WriteFailed naming it."""

    path = None

    def open(self, path):
        self.path = path
        with _writing(path):
            super().open(path)

    def __call__(self, message):
        if self.path is None:
            super().__call__(message)
            return
        with _writing(self.path):
            super().__call__(message)

    def close(self):
        with _writing(self.path):
            super().close()


class _TensorBoard(summaries.TensorBoard):
    """summaries.TensorBoard whose failed writes of the events file raise _WriteFailed."""

    def __init__(self, log_dir):
        self.where = f"the TensorBoard events in {log_dir}"
        with self.writing():
            super().__init__(log_dir)

    def writing(self):
        return _writing(self.where, (OSError, tf.errors.OpError))

    def scalars(self, values, step):
        with self.writing():
            super().scalars(values, step)

    def image(self, tag, image, step):
        with self.writing():
            super().image(tag, image, step)

    def flush(self):
        with self.writing():
            super().flush()

    def close(self):
        with self.writing():
            super().close()


# ------------------------------------------------------------------------------------------------
# The run: trainer, run directory, writers.


def check_metrics(cfg, source):
    """Metric names of --metrics, checked (needs the dataset directory for the reals)."""
    if not cfg.metrics:
        return []
    names = metrics_lib.parse_metric_names(",".join(cfg.metrics))
    if not isinstance(source, sources.PyramidSource):
        raise ValueError("--metrics: needs a dataset directory (--data_dir) for the reals")
    return names


class _Run:
    """One `train` call: the trainer, its state, the run directory and the writers.

    Only the chief looks at the results directory (the other workers may not share its file
    system): it locks the run directory for the run's lifetime (`claim_run_dir`) and broadcasts
    the restored state to the others (see `open`).
    """

    def __init__(self, cfg, source, strategy, log_stream, init=None):
        self.cfg, self.source, self.strategy = cfg, source, strategy
        self.chief = distribute.is_chief(strategy)
        self.multi_worker = distribute.is_multi_worker(strategy)
        self.schedule = cfg.build_schedule(source.resolution, strategy.num_replicas_in_sync)
        self.schedule.check_minibatches()
        self.log = _RunLog(stream=log_stream)
        self.metric_names = check_metrics(cfg, source)
        self.trainer = GanTrainer(cfg, strategy, source.resolution, source.num_channels,
                                  source.label_size, source.labels, init)  # init: --init_from
        self.state = self.trainer.state
        self.resume_dir = self.run_dir = self.lock = None
        self._claim_run_dir()
        self.tensorboard = self.checkpoints = self.snapshots = self.clock = None
        self.resumed = False
        self.progress = ProgressBar()
        self.tick_stats = collections.defaultdict(lambda: [0.0, 0])  # tag: [sum, count]
        self._batches, self._batches_key = None, None

    def _claim_run_dir(self):
        """The chief picks and locks the run directory before anything is written there; under
        multi_worker it then tells the other workers whether it could (one broadcast, the first
        collective after the networks exist), so that all stop when it cannot instead of
        waiting for its collectives."""
        refusal = ""
        if self.chief:
            try:
                self.resume_dir, self.run_dir, self.lock = claim_run_dir(self.cfg)
            except TrainingError as error:
                refusal = str(error)
        if self.multi_worker:
            try:
                refusal = distribute.broadcast_text_from_chief(self.strategy, refusal, self.chief)
            except BaseException:
                if self.lock is not None:
                    self.lock.release()
                raise
        if refusal:
            raise TrainingError(refusal if self.chief else f"the chief worker stopped: {refusal}")

    def _path(self, name):
        return os.path.join(self.run_dir, name)

    @property
    def export_dir(self):
        return self._path(run_dir_lib.EXPORT_DIR)

    def write_error(self, failure):
        """The TrainingError of a _WriteFailed: what failed, where the run stopped and the last
        complete checkpoint (the run continues from it once there is room)."""
        last = tf.train.latest_checkpoint(self._path(run_dir_lib.CHECKPOINT_DIR))
        kept = (f"the last complete checkpoint {last} is intact; make room and continue with "
                f"--resume={self.run_dir}" if last else "no checkpoint was written yet")
        return TrainingError(f"{failure}; stopped at kimg {_nimg(self.state) / 1000:.1f}, "
                             f"{kept}")

    def open(self, flags):
        """Log, network.json and flags.json (new run) or their check (resume), TensorBoard,
        checkpoints; restores the newest checkpoint when resuming."""
        network = self.trainer.network_json()
        if self.chief:
            self.log.open(self._path(run_dir_lib.LOG_FILE))
            if self.lock.warning:
                self.log(f"Warning: {self.lock.warning}")
            if self.resume_dir:
                run_dir_lib.check_network(self.run_dir, network)
            else:
                with _writing(self.run_dir):
                    run_dir_lib.write_new_run(self.run_dir, network, flags)
        self.tensorboard = _TensorBoard(self.run_dir if self.chief else None)
        self.checkpoints = run_dir_lib.Checkpoints(self.trainer.checkpoint,
                                                   self.run_dir if self.chief else None,
                                                   self.cfg.keep_checkpoints)
        if self.resume_dir:
            path = self.checkpoints.restore_latest(self.log)
            self.log(f"Resuming {self.run_dir} from {os.path.basename(path)} at kimg "
                     f"{_nimg(self.state) / 1000:.1f}")
        elif self.chief:
            self.log(f"Saving results to {self.run_dir}")
        if self.multi_worker and self.cfg.resume:
            self.trainer.broadcast_from_chief(self.chief)
        # True on every worker when the chief resumed (the state says a phase was applied).
        self.resumed = float(self.state.prev_lod.numpy()) >= 0
        renderer = snapshots_lib.Renderer(self.trainer.generator_ema, self.trainer.label_size)
        self.snapshots = snapshots_lib.Snapshots(
            self.cfg, self.trainer.arch, self.source, renderer, self.trainer.latent_size,
            self.run_dir if self.chief else None, self.tensorboard)

    def start(self):
        """The reals grid; for a new run the first phase and its fakes grid; the clock."""
        with _writing(self.run_dir):
            self.snapshots.reals()
        if not self.resumed:
            phase = self.schedule.at(_nimg(self.state) / 1000.0)  # > 0 with --init_from
            self.trainer.apply_phase(phase)
            with _writing(self.run_dir):
                self.snapshots.fakes(_nimg(self.state), phase.resolution)
        self.clock = _Clock(self.state.train_seconds.numpy().item())

    def batches(self, phase):
        """Iterator of distributed batches at the phase's resolution and minibatch, from the
        state's data position when either changed."""
        key = (phase.resolution, phase.minibatch)
        if key != self._batches_key:
            start = self.state.data_position.numpy().item()

            def dataset_fn(context):
                return self.source.dataset(phase.resolution, phase.minibatch, start, context)

            self._batches = iter(self.trainer.distribute(dataset_fn))
            self._batches_key = key
        return self._batches

    def collect(self, stats):
        """Adds `train_steps` stats ({tag: (sum, count)}) to the tick's."""
        for tag, (total, count) in stats.items():
            self.tick_stats[tag][0] += total
            self.tick_stats[tag][1] += count

    def save_checkpoint(self):
        """Saves a checkpoint (every worker calls it); returns its path."""
        self.state.train_seconds.assign(self.clock.total())
        return self.checkpoints.save()

    def run_metrics(self, nimg, resolution):
        """Computes --metrics on the EMA generator (only once it is fully grown)."""
        if not self.metric_names or not self.chief or resolution != self.source.resolution:
            return
        reals = metrics_lib.RealImages(self.cfg.data_dir, mirror=self.cfg.mirror_augment,
                                       seed=self.cfg.seed)
        generator = metrics_lib.generator_from_network(self.trainer.generator_ema, resolution)
        results = metrics_lib.compute_metrics(self.metric_names, generator=generator, reals=reals,
                                              num=self.cfg.metrics_num or None,
                                              seed=self.cfg.seed, progress_stream=None)
        path = self._path(run_dir_lib.METRICS_JSONL)
        with _writing(path):
            metrics_lib.append_jsonl(path, results, kimg=nimg / 1000.0)
        with self.tensorboard.writing():
            metrics_lib.write_tensorboard(self.tensorboard.writer, results, step=nimg)
        for line in metrics_lib.format_results(results):
            self.log(line)

    def export(self, resolution):
        """Exports the EMA generator at `resolution` as a float32 SavedModel (whatever
        --precision trained it); returns its directory."""
        return export_lib.export_generator(
            self.trainer.float32_generator_ema(), self.export_dir, self.cfg.export_model_name,
            resolution=resolution,
            meta={"training_kimg": _nimg(self.state) / 1000, "flags": self.cfg.to_json_dict()})

    def close(self, after_error=False):
        """Closes TensorBoard and the log, then releases the run directory's lock. After an
        error their own failures (the same full disk, say) are ignored: the first is reported."""
        first = None
        try:
            for close in (self._close_tensorboard, self.progress.clear, self.log.close):
                try:
                    close()
                except (_WriteFailed, OSError, tf.errors.OpError) as error:
                    first = first or error
        finally:
            if self.lock is not None:
                self.lock.release()
        if first is not None and not after_error:
            raise self.write_error(first) if isinstance(first, _WriteFailed) else first

    def _close_tensorboard(self):
        if self.tensorboard is not None:
            self.tensorboard.close()


def claim_run_dir(cfg):
    """(resume_dir, run_dir, lock): the run directory `cfg` resumes (resume_dir, None for a new
    run) or a new one, locked for this process (a run_lock.RunLock, released by the caller).
    TrainingError naming the directory and the holder's pid and host when another run holds
    it, including the newest unfinished run that --resume=auto picks (no other run is chosen
    in its place)."""
    while True:
        resume_dir = run_dir_lib.resolve_resume(cfg)
        run_dir = resume_dir or run_dir_lib.create_run_dir(cfg.results_dir, cfg.run_desc)
        try:
            lock = run_lock.acquire(run_dir)
        except run_lock.RunLockError as error:
            raise TrainingError(str(error)) from None
        except OSError as error:
            raise TrainingError(f"cannot create the lock file {run_lock.LOCK_FILE} in {run_dir}: "
                                f"{error.strerror or error}") from None
        if (cfg.resume == "auto" and resume_dir
                and os.path.exists(os.path.join(resume_dir, run_dir_lib.DONE_FILE))):
            lock.release()  # its run finished while this one looked: look again
            continue
        return resume_dir, run_dir, lock
