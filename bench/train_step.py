"""Benchmark: full ProGAN training iterations at paper width (not a test).

One iteration = 1 WGAN-GP discriminator step (lambda 10, drift 0.001) + generator EMA + 1
generator step, Adam(0.001, 0, 0.99), global batch --batch, 3-channel images at --resolution
while that resolution fades in (alpha 0.5), as in the CPU peer baseline of SPEC 8.

    python bench/train_step.py --resolution 16 --batch 16 --iterations 3
    python bench/train_step.py --resolution 32 --fmap_max 64     # narrow, quick check
    python bench/train_step.py --architecture stylegan --resolution 16 --iterations 2

--architecture stylegan times the StyleGAN generator (mapping + synthesis, random noise,
dlatent_avg update) with the blurred discriminator under the same WGAN-GP workload, as the
PyTorch peer (rosinality's StyleGAN, style mixing off by default: --style_mixing_prob 0).

--xla, --precision bfloat16 / float16 (--mixed_precision = --precision float16) and
--replicas N add configurations measured side by side, each in its own process (logical devices,
compiled kernels and dtype policies are process-wide), after the float32 one-device baseline; a
table of img/s closes the run:

    python bench/train_step.py --resolution 16 --iterations 2 --xla --precision bfloat16 \
        --precision float16 --replicas 2

float16 starts its loss scale at 2^10 (2^64, the original's start, would skip the first steps);
bfloat16 has none. A bfloat16 configuration prints the warning of `python -m progan_tf.train`
when this CPU has no bfloat16 arithmetic or oneDNN is off.

Prints img/s, s/iter (median of the timed iterations; the first iteration, which traces and
compiles, is reported separately), peak RSS, the CPU model and the oneDNN setting, and the
iteration's FLOPs counted from the layer shapes (`progan_tf.networks.summary.iteration_flops`:
forward, backward and the gradient penalty's double backward, with the multipliers stated
there) with the GFLOP/s they give; the FLOPs per part are printed before the timing.

--steps_per_call K runs K minibatches per tf.function call (`GanTrainer.train_steps`, what
training does with --steps_per_call) and reports the time per minibatch; each timed
"iteration" is then one call. Small networks show the per-call dispatch it removes:

    python bench/train_step.py --resolution 8 --batch 64 --channels 1 --fmap_base 128 \
        --fmap_max 64 --iterations 20 --steps_per_call 4      # the quickstart's 8x8 stage

--profile DIR writes a TensorBoard profiler trace of the timed iterations (after the traced
first one) to DIR/<configuration> (view it with `pip install tensorboard-plugin-profile` and
`tensorboard --logdir DIR`, Profile tab: trace viewer, per-op statistics). The profiler's own
overhead is in those iterations' times: take speed figures from a run without it. oneDNN's
layout reorders run inside the TensorFlow ops and do not show in the trace; list every oneDNN
primitive (convolution, reorder, gemm) with its time with

    ONEDNN_VERBOSE=profile_exec python bench/train_step.py --resolution 16 --iterations 1 \
        --fmap_max 64 2>&1 | grep onednn_verbose

(with TF_ENABLE_ONEDNN_OPTS=0 only the matmuls go through oneDNN: gemm lines alone). Importing
progan_tf turns oneDNN on unless the environment sets TF_ENABLE_ONEDNN_OPTS (TensorFlow itself
enables it only on CPUs with AVX-512 VNNI/BF16 or AMX); the oneDNN line printed says which.

--inter_op_threads 1 runs one TensorFlow op at a time, so that a profile's per-op times add up
to the iteration (with the default, ops running side by side share the cores and each one's
time includes waiting for the other).
"""

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import progan_tf  # noqa: E402,F401  (before TensorFlow: oneDNN on unless the environment says)
from progan_tf.training import precision as precision_lib  # noqa: E402  (imports no TensorFlow)


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    """The AVX-related /proc/cpuinfo flags this CPU has (empty where they cannot be read)."""
    flags = precision_lib.read_cpu_flags() or set()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]


# Configuration name -> (replicas, xla, --precision); "replicas" uses --replicas.
CONFIGURATIONS = {"float32": (1, False, "float32"), "xla": (1, True, "float32"),
                  "bfloat16": (1, False, "bfloat16"), "float16": (1, False, "float16"),
                  "replicas": (None, False, "float32")}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=32, help="stage being faded in")
    parser.add_argument("--batch", type=int, default=16, help="global minibatch")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations")
    parser.add_argument("--architecture", default="progan", choices=["progan", "stylegan"],
                        help="generator architecture")
    parser.add_argument("--style_mixing_prob", type=float, default=0.0,
                        help="StyleGAN: style-mixing probability (peer: 0, training default 0.9)")
    parser.add_argument("--fmap_base", type=int, default=8192, help="paper: 8192")
    parser.add_argument("--fmap_max", type=int, default=512, help="paper: 512")
    parser.add_argument("--replicas", type=int, default=1,
                        help="also measure MirroredStrategy over this many logical CPU devices")
    parser.add_argument("--xla", action="store_true", help="also measure jit-compiled steps")
    parser.add_argument("--precision", action="append", default=[],
                        choices=["float32", "bfloat16", "float16"],
                        help="also measure this compute precision (repeatable; bfloat16: "
                             "mixed_bfloat16; float16: mixed_float16, loss scale 2^10; float32 "
                             "is the baseline, always measured)")
    parser.add_argument("--mixed_precision", action="store_true",
                        help="the same as --precision float16")
    parser.add_argument("--single", default=None, choices=list(CONFIGURATIONS),
                        help="measure only this configuration in this process (used internally: "
                             "logical devices are process-wide)")
    parser.add_argument("--steps_per_call", type=int, default=1,
                        help="minibatches per tf.function call (GanTrainer.train_steps); 1 = "
                             "one d_step and one g_step call per minibatch")
    parser.add_argument("--conv_gradients", default="auto", choices=["auto", "gemm", "native"],
                        help="the training flag: how the convolutions' gradients are computed "
                             "(auto = gemm for 128+ channels on CPUs, gemm = every width)")
    parser.add_argument("--channels", type=int, default=3, help="image channels")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0 = TensorFlow's default, all cores)")
    parser.add_argument("--inter_op_threads", type=int, default=0,
                        help="inter-op threads (0 = TensorFlow's default; 1 runs one op at a "
                             "time, which makes a profile's per-op times add up)")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="write a TensorBoard profiler trace of the timed iterations to "
                             "DIR/<configuration>")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.replicas < 1:
        sys.exit("train_step.py: error: --replicas must be >= 1")
    if args.iterations < 1:
        sys.exit("train_step.py: error: --iterations must be >= 1")
    if args.steps_per_call < 1:
        sys.exit("train_step.py: error: --steps_per_call must be >= 1")
    if args.profile is not None and os.path.exists(args.profile) and not os.path.isdir(
            args.profile):
        sys.exit(f"train_step.py: error: --profile {args.profile} exists and is not a directory")
    if args.single is None and (args.xla or extra_precisions(args) or args.replicas > 1):
        return compare(args, argv if argv is not None else sys.argv[1:])
    replicas, xla, precision = CONFIGURATIONS[args.single or "float32"]
    replicas = args.replicas if replicas is None else replicas
    measure(args, replicas, xla, precision, args.single or "float32")


def extra_precisions(args):
    """The precisions other than float32 asked for, in CONFIGURATIONS order."""
    wanted = set(args.precision) | ({"float16"} if args.mixed_precision else set())
    return [name for name in ("bfloat16", "float16") if name in wanted]


def _without_variants(argv):
    """argv without the options that select configurations (--xla, --precision X,
    --mixed_precision, --single X): each child process gets --single instead."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--precision", "--single"):
            skip = True
        elif not arg.startswith(("--xla", "--mixed_precision", "--single=", "--precision=")):
            out.append(arg)
    return out


def compare(args, argv):
    """Runs float32 one-device and each requested variant in its own process; prints a table."""
    names = (["float32"] + (["xla"] if args.xla else []) + extra_precisions(args)
             + (["replicas"] if args.replicas > 1 else []))
    base = _without_variants(argv)
    rows = []
    for name in names:
        print(f"--- {name} ---", flush=True)
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), *base,
                               f"--single={name}"], capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
        if proc.returncode != 0 or not result:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            rows.append((name, "failed", tail[:100]))
        else:
            fields = result[-1].split(": ", 1)[1]
            rows.append((name, fields.split(" img/s")[0], fields.split(", ", 1)[1]))
    label = {"replicas": f"mirrored x{args.replicas} logical CPUs",
             "bfloat16": "bfloat16 (mixed_bfloat16)", "float16": "float16 (mixed_float16)"}
    print(f"\nresolution {args.resolution}, batch {args.batch}, fmap_max {args.fmap_max}, "
          f"{args.iterations} timed iterations each")
    print(f"{'configuration':<28} {'img/s':>8}  details")
    for name, img_s, details in rows:
        print(f"{label.get(name, name):<28} {img_s:>8}  {details}")


def measure(args, replicas, xla, precision, name):
    """One configuration (called `name`) in this process."""
    import numpy as np
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    if replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
    from progan_tf import config
    from progan_tf import schedule
    from progan_tf.networks.summary import format_iteration_flops, iteration_flops
    from progan_tf.training import precision as precision_lib
    from progan_tf.training.distribute import make_strategy
    from progan_tf.training.sources import InMemorySource
    from progan_tf.training.steps import GanTrainer

    res = args.resolution
    cfg = config.TrainConfig(data_dir="synthetic", fmap_base=args.fmap_base,
                             fmap_max=args.fmap_max, minibatch_base=args.batch, minibatch_dict={},
                             lrate_dict={}, xla=xla, precision=precision,
                             architecture=args.architecture,
                             conv_gradients=args.conv_gradients,
                             loss="wgan_gp", style_mixing_prob=args.style_mixing_prob,
                             strategy="mirrored" if replicas > 1 else "one_device")
    strategy = make_strategy(cfg.strategy)
    images = np.random.default_rng(0).uniform(-1, 1, (2 * args.batch, res, res, args.channels))
    source = InMemorySource(images.astype(np.float32))
    gan = GanTrainer(cfg, strategy, res, args.channels)
    if precision == "float16":  # 2^64 (the original's start) would skip the first steps
        gan.state.assign(d_loss_scale_log2=10.0, g_loss_scale_log2=10.0)
    gan.apply_phase(schedule.Phase(kimg=0.0, lod=0.5, resolution=res, fade_alpha=0.5,
                                   minibatch=args.batch, g_lrate=0.001, d_lrate=0.001,
                                   tick_kimg=1.0))
    batches = iter(gan.distribute(lambda ctx: source.dataset(res, args.batch, 0, ctx)))
    g_params = sum(int(np.prod(v.shape)) for v in gan.generator.model_for(res).trainable_variables)
    d_params = sum(int(np.prod(v.shape))
                   for v in gan.discriminator.model_for(res).trainable_variables)

    def iteration():
        """Seconds per minibatch (d_step + EMA + g_step) of one call of --steps_per_call."""
        start = time.perf_counter()
        if args.steps_per_call == 1:
            gan.d_step(next(batches), res, args.batch, 0.999)
            stats, _ = gan.g_step(res, args.batch)
            float(stats["Loss/G"])  # wait for the step to finish
        else:
            gan.train_steps(batches, res, args.batch, 0.999, args.steps_per_call, 50)
        return (time.perf_counter() - start) / args.steps_per_call

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs; {', '.join(cpu_flags())})")
    print(f"oneDNN: {precision_lib.onednn_setting()}")
    print(f"TensorFlow {tf.__version__}, strategy {type(strategy).__name__} x"
          f"{strategy.num_replicas_in_sync}, xla {xla}, precision {precision}, "
          f"{args.steps_per_call} minibatch(es) per call, convolution gradients "
          f"{args.conv_gradients} (GEMMs from {gan.gemm_min_channels} channels), inter-op threads "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'}, intra-op "
          f"threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    warning = precision_lib.bfloat16_warning(
        precision, bool(tf.config.list_physical_devices("GPU")))
    if warning:
        print(warning)
    print(f"architecture {args.architecture}, resolution {res} (fade-in alpha 0.5), "
          f"batch {args.batch}, G {g_params:,} / "
          f"D {d_params:,} parameters at this stage (fmap_base {args.fmap_base}, "
          f"fmap_max {args.fmap_max})", flush=True)
    flops = iteration_flops(gan.generator, gan.discriminator, res, args.batch, loss=cfg.loss,
                            style_mixing=args.style_mixing_prob > 0)
    print(format_iteration_flops(flops), flush=True)
    first = iteration()
    print(f"first iteration (trace + run): {first:.1f} s", flush=True)
    profile_dir = os.path.join(args.profile, name) if args.profile else None
    if profile_dir:
        tf.profiler.experimental.start(profile_dir)
    times = []
    try:
        for index in range(args.iterations):
            with tf.profiler.experimental.Trace("train_iteration", step_num=index, _r=1):
                times.append(iteration())
            print(f"  iteration {index + 1}: {times[-1]:.4g} s", flush=True)
    finally:
        if profile_dir:
            tf.profiler.experimental.stop()
    if profile_dir:
        print(f"profiler trace of {len(times)} iterations (times include the profiler's "
              f"overhead): {profile_dir}")
    per_iter = statistics.median(times)
    peak_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"RESULT resolution {res} batch {args.batch}: {args.batch / per_iter:.3f} img/s, "
          f"{per_iter:.4g} s/iter (median of {len(times)}), "
          f"{flops.total / 1e9:.1f} GFLOP/iter, {flops.total / per_iter / 1e9:.1f} GFLOP/s, "
          f"peak RSS {peak_rss_gib:.2f} GiB")


if __name__ == "__main__":
    main()
