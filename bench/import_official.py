"""Seconds and memory to load and export a full-size official NVIDIA pickle.

    python bench/import_official.py                          # ProGAN CelebA-HQ 1024 layout
    python bench/import_official.py --architecture both      # and StyleGAN FFHQ 1024
    python bench/import_official.py --resolution 64 --architecture stylegan

Writes a synthetic state with the real names, shapes and kwargs of the released files (ProGAN
`karras2018iclr-celebahq-1024x1024.pkl`: fmap_base 8192, fmap_max 512, latent 512, unfused,
stddev groups of 16, 3 channels; StyleGAN `stylegan-ffhq-1024x1024.pkl`: the build functions'
defaults) as a `(G, D, Gs)` pickle exactly like NVIDIA's (tests/official_writer.py, the writer
the tests check against `progan_tf.official`), random values, protocol 4. Then, in a fresh
process per file, it imports TensorFlow, loads the file with `progan_tf.official.load` and
exports its Gs as `python -m progan_tf.import_official` does, timing each step and reading the process's RSS
(Linux /proc): growth over the RSS after `import tensorflow`, current and peak, against the
weights' bytes. Targets (issue 13): load <= 30 s; peak growth <= 3x the weights' bytes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))  # the writer the tests keep honest
sys.path.insert(0, REPO)

import official_writer  # noqa: E402

LOAD_TARGET_SEC = 30.0
GROWTH_TARGET = 3.0

ARCHITECTURES = {
    "progan": (official_writer.progan_states, official_writer.PROGAN_CELEBAHQ),
    "stylegan": (official_writer.stylegan_states, official_writer.STYLEGAN_FFHQ),
}

# The measuring process: argv = pickle, export directory. Prints one JSON object.
CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, sys.argv[3])

def status(key):
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None

def reset_peak():
    try:  # Linux >= 4.0: VmHWM restarts from the current RSS
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False

began = time.perf_counter()
import tensorflow as tf
import exports
from progan_tf import official
out = {"import_sec": time.perf_counter() - began, "rss_after_import": status("VmRSS")}
out["peak_reset"] = reset_peak()
began = time.perf_counter()
loaded = official.load(sys.argv[1])
out["load_sec"] = time.perf_counter() - began
out["rss_after_load"], out["peak_after_load"] = status("VmRSS"), status("VmHWM")
began = time.perf_counter()
# What `python -m progan_tf.import_official` does after loading (import_official.py).
version_dir = exports.export_generator(loaded.network("Gs"), sys.argv[2], "generator",
                                       meta=loaded.meta("Gs"),
                                       resolution=loaded.trained_resolution("Gs"))
out["export_sec"] = time.perf_counter() - began
out["rss_after_export"], out["peak_after_export"] = status("VmRSS"), status("VmHWM")
out["architecture"], out["lod"], out["export"] = loaded.architecture, float(loaded.lod), version_dir
print("RESULT " + json.dumps(out))
"""


def measure(path, export_dir):
    """Runs CHILD on `path` in a fresh Python process; returns its measurements."""
    result = subprocess.run([sys.executable, "-c", CHILD, path, export_dir, REPO],
                            capture_output=True, text=True, timeout=3600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise SystemExit(f"the measuring process failed ({result.returncode}):\n"
                         f"{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def write_state(architecture, resolution, path, protocol, fmap_max=None, seed=0):
    """Writes the synthetic (G, D, Gs) pickle; returns (weights' bytes, file bytes, seconds).
    fmap_max: narrower networks than the released files' 512 (a quick check of this script)."""
    make_states, kwargs = ARCHITECTURES[architecture]
    began = time.perf_counter()
    kwargs = dict(kwargs, resolution=resolution)
    if fmap_max:
        kwargs["fmap_max"] = fmap_max
    states = make_states(kwargs, seed=seed)
    weights = official_writer.weights_bytes(states)
    size = official_writer.write_pickle(path, states, protocol=protocol)
    return weights, size, time.perf_counter() - began


def report(architecture, resolution, weights, size, numbers):
    mib = 2.0 ** 20
    growth = numbers["peak_after_export"] - numbers["rss_after_import"]
    load_growth = numbers["peak_after_load"] - numbers["rss_after_import"]
    held = numbers["rss_after_load"] - numbers["rss_after_import"]
    ratio = growth / weights
    lines = [
        f"{architecture} {resolution}x{resolution}: weights {weights / mib:.1f} MiB "
        f"(file {size / mib:.1f} MiB)",
        f"  import tensorflow   {numbers['import_sec']:6.1f} s   RSS "
        f"{numbers['rss_after_import'] / mib:.0f} MiB",
        f"  official.load       {numbers['load_sec']:6.1f} s   RSS growth held "
        f"{held / mib:.0f} MiB, peak {load_growth / mib:.0f} MiB "
        f"({load_growth / weights:.2f}x the weights)",
        f"  export (SavedModel) {numbers['export_sec']:6.1f} s   peak RSS growth "
        f"{growth / mib:.0f} MiB ({ratio:.2f}x the weights)",
        f"  targets: load <= {LOAD_TARGET_SEC:g} s: "
        f"{'met' if numbers['load_sec'] <= LOAD_TARGET_SEC else 'MISSED'}; "
        f"load peak growth <= {GROWTH_TARGET:g}x: "
        f"{'met' if load_growth <= GROWTH_TARGET * weights else 'MISSED'}"
        + ("" if numbers["peak_reset"] else " (peak not reset after import: an upper bound)"),
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", choices=("progan", "stylegan", "both"),
                        default="progan")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--protocol", type=int, choices=(2, 4, 5), default=4)
    parser.add_argument("--fmap_max", type=int, default=None,
                        help="narrower networks than the released files' 512 (a quick check)")
    parser.add_argument("--work_dir", default=None,
                        help="where the pickle and the export go (default: a temporary "
                             "directory, deleted at the end)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = parser.parse_args(argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="bench-import-official-")
    architectures = ("progan", "stylegan") if args.architecture == "both" else (
        args.architecture,)
    results = []
    try:
        for architecture in architectures:
            path = os.path.join(work_dir, f"{architecture}-{args.resolution}.pkl")
            weights, size, write_sec = write_state(architecture, args.resolution, path,
                                                   args.protocol, args.fmap_max)
            print(f"wrote {path} in {write_sec:.1f} s", flush=True)
            numbers = measure(path, os.path.join(work_dir, f"export-{architecture}"))
            for line in report(architecture, args.resolution, weights, size, numbers):
                print(line, flush=True)
            results.append(dict(numbers, architecture=architecture,
                                resolution=args.resolution, weights_bytes=weights,
                                file_bytes=size))
            os.remove(path)
        if args.json:
            print(json.dumps(results))
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
