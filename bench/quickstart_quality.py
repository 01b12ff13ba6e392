"""Benchmark: the quickstart's quality spread over seeds, per training precision (not a test).

Trains `configs/quickstart.flags` once per (precision, seed), then measures each run's final EMA
generator with `python -m progan_tf.metrics`: SWD (average over the Laplacian levels, x1e3) of
--swd_num images and FID of --fid_num images. Prints one row per run (wall time, img/s of the
whole run, SWD, FID) and per precision the mean, standard deviation and range of each metric.
With a second precision it says whether each of its numbers lies within the first precision's
range, or within 10% of the first's mean where that range is narrower (issue 14, ask 4).

    python bench/quickstart_quality.py                                   # float32, 3 seeds
    python bench/quickstart_quality.py --precision float32 --precision bfloat16
    python bench/quickstart_quality.py --jobs 3 --kimg 300               # 3 trainings at once
    python bench/quickstart_quality.py --measure_only                    # runs already trained

Runs go to --results_dir/<precision>-seed<seed>/00000-quickstart (a finished run, one with a
final export, is not retrained; an unfinished one resumes); metric lines are appended to each
run's metrics.jsonl, and a metric already recorded there for the same number of images is
taken from it, so an interrupted measurement continues where it stopped. FID needs
`python -m progan_tf.metrics.weights fetch` once. Each training and metric runs as its own
process, as a user would run it; with --jobs N trainings share the machine, so their wall times
are not the quickstart's alone.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join("datasets", "fashion-mnist-32")


def run_dir(results_dir, precision, seed):
    return os.path.join(results_dir, f"{precision}-seed{seed}", "00000-quickstart")


def trained(directory):
    return os.path.isdir(os.path.join(directory, "export", "generator"))


def train_command(results_dir, precision, seed, kimg):
    return [sys.executable, "-m", "progan_tf.train", "--flagfile=configs/quickstart.flags",
            f"--results_dir={os.path.join(results_dir, f'{precision}-seed{seed}')}",
            f"--seed={seed}", f"--precision={precision}", f"--total_kimg={kimg}",
            "--resume=auto"]


def train_all(runs, results_dir, kimg, jobs):
    """Trains every (precision, seed) not trained yet, `jobs` at a time; returns wall seconds."""
    pending = [run for run in runs if not trained(run_dir(results_dir, *run))]
    started, walls = {}, {}
    while pending or started:
        while pending and len(started) < jobs:
            run = pending.pop(0)
            log = open(os.path.join(results_dir, f"{run[0]}-seed{run[1]}.log"), "w")  # noqa: SIM115
            proc = subprocess.Popen(train_command(results_dir, *run, kimg), cwd=REPO, stdout=log,
                                    stderr=subprocess.STDOUT)
            started[run] = (proc, time.perf_counter(), log)
            print(f"training {run[0]} seed {run[1]} (pid {proc.pid})", flush=True)
        time.sleep(2)
        for run, (proc, began, log) in list(started.items()):
            if proc.poll() is None:
                continue
            log.close()
            del started[run]
            if proc.returncode != 0:
                sys.exit(f"training {run[0]} seed {run[1]} failed (exit {proc.returncode}); "
                         f"see {log.name}")
            walls[run] = time.perf_counter() - began
            print(f"trained {run[0]} seed {run[1]} in {walls[run] / 60:.1f} min", flush=True)
    return walls


def recorded(directory, metric, num):
    """The headline value (SWD: the level average) of `metric` over `num` images recorded in the
    run's metrics.jsonl, or None."""
    path = os.path.join(directory, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        lines = [json.loads(line) for line in file if line.strip()]
    values = [line["value"] for line in lines if line["metric"] == metric and line["num"] == num]
    return values[-1] if values else None


def measure(results_dir, run, metric, num):
    """One metric of one run's final EMA generator (appended to the run's metrics.jsonl, and
    taken from there when it was measured before); returns SWD's level average x1e3 or FID."""
    directory = run_dir(results_dir, *run)
    value = recorded(directory, metric, num)
    if value is not None:
        return value
    command = [sys.executable, "-m", "progan_tf.metrics", f"--metrics={metric}", f"--num={num}",
               f"--data_dir={DATA_DIR}", f"--run_dir={directory}", "--quiet"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{metric} of {run[0]} seed {run[1]} failed:\n{proc.stderr[-2000:]}")
    return recorded(directory, metric, num)


def spread(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std, min(values), max(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1000,1001,1002", help="comma-separated")
    parser.add_argument("--precision", action="append", default=[],
                        choices=["float32", "bfloat16", "float16"],
                        help="repeatable; the first is the reference (default float32)")
    parser.add_argument("--kimg", type=float, default=300, help="--total_kimg of each run")
    parser.add_argument("--swd_num", type=int, default=10000)
    parser.add_argument("--fid_num", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once")
    parser.add_argument("--results_dir", default=os.path.join("results", "quality"))
    parser.add_argument("--measure_only", action="store_true",
                        help="measure the runs in --results_dir, train none")
    args = parser.parse_args()
    precisions = args.precision or ["float32"]
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    runs = [(precision, seed) for precision in precisions for seed in seeds]
    results_dir = os.path.abspath(args.results_dir)
    os.makedirs(results_dir, exist_ok=True)
    if not os.path.isdir(os.path.join(REPO, DATA_DIR)):
        subprocess.run([sys.executable, "-m", "data_tools", "create_embedded", DATA_DIR],
                       cwd=REPO, check=True)
    walls = {} if args.measure_only else train_all(runs, results_dir, args.kimg, args.jobs)
    missing = [run for run in runs if not trained(run_dir(results_dir, *run))]
    if missing:
        sys.exit(f"not trained: {missing} (under {results_dir})")
    rows = {}
    for run in runs:
        swd = measure(results_dir, run, "swd", args.swd_num)
        fid = measure(results_dir, run, "fid", args.fid_num)
        rows[run] = (swd, fid)
        print(f"measured {run[0]} seed {run[1]}: SWD x1e3 avg {swd:.3f}, FID {fid:.3f}",
              flush=True)

    print(f"\n{'precision':<10} {'seed':>5} {'wall min':>9} {'img/s':>7} "
          f"{'SWDx1e3 avg':>12} {'FID':>8}   (SWD {args.swd_num} images, FID {args.fid_num})")
    for run in runs:
        wall = walls.get(run)
        wall_text = f"{wall / 60:9.1f}" if wall else f"{'-':>9}"
        rate = f"{args.kimg * 1000 / wall:7.0f}" if wall else f"{'-':>7}"
        print(f"{run[0]:<10} {run[1]:>5} {wall_text} {rate} {rows[run][0]:12.3f} "
              f"{rows[run][1]:8.3f}")
    stats = {}
    for precision in precisions:
        for index, name in enumerate(["SWDx1e3 avg", "FID"]):
            values = [rows[(precision, seed)][index] for seed in seeds]
            stats[(precision, name)] = spread(values)
            mean, std, low, high = stats[(precision, name)]
            print(f"{precision:<10} {name:<12} mean {mean:.3f}  std {std:.3f}  "
                  f"range {low:.3f} .. {high:.3f}")
    reference = precisions[0]
    for precision in precisions[1:]:
        for index, name in enumerate(["SWDx1e3 avg", "FID"]):
            mean, _, low, high = stats[(reference, name)]
            if high - low < 0.2 * mean:  # a range narrower than +-10% of the mean
                low, high = 0.9 * mean, 1.1 * mean
            for seed in seeds:
                value = rows[(precision, seed)][index]
                inside = low <= value <= high
                print(f"{precision} seed {seed} {name} {value:.3f}: "
                      f"{'within' if inside else 'OUTSIDE'} {reference}'s {low:.3f} .. {high:.3f}")


if __name__ == "__main__":
    main()
