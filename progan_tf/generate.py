"""Images from a trained generator, from an exported SavedModel alone or from a run's checkpoint:
one PNG per seed or a grid, a latent interpolation between seeds, or the original's smoothed
random walk ([PG] util_scripts.py generate_interpolation_video) as PNG frames or a GIF.

    python -m progan_tf.generate --saved_model results/00000-quickstart/export/generator \\
        --seeds 0-63 --grid 8x8 --out_dir out                      # out/grid.png
    python -m progan_tf.generate --checkpoint results/00000-quickstart --seeds 1,5,9 \\
        --out_dir out                                              # out/seed0001.png ...
    python -m progan_tf.generate --saved_model EXPORT --seeds 1,5,9 --interp slerp --steps 24 \\
        --gif --out_dir out                                        # out/interp.gif
    python -m progan_tf.generate --saved_model EXPORT --walk --seeds 1000 --grid 2x2 \\
        --duration_sec 10 --fps 30 --smoothing_sec 1 --out_dir out # out/walk_00000.png ...
    python -m progan_tf.generate --pickle stylegan-ffhq-1024x1024.pkl --seeds 0-3 \\
        --out_dir out                       # NVIDIA's file, its stored truncation (psi 0.7)

A seed's image is the `generate_seeds` signature's: latents drawn with
tf.random.stateless_normal([latent_size], seed=[seed, 0], alg="philox"), the same on any machine.
All sources load through `progan_tf.generators`; a checkpoint renders like its export, an
official pickle (`--pickle`, read by `progan_tf.official` without running its code) like the
original's Gs with randomize_noise=False.
"""

import argparse
import dataclasses
import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402

from progan_tf.utils.images import (image_grid, style_mixing_tiles, write_gif,  # noqa: E402
                                    write_png)

SEED_LIMIT = 2**32
MAX_SEEDS = 100_000  # per range; a typo such as 0-4294967295 fails instead of filling memory
WALK_DEFAULT_SEED = 1000  # the original's random_seed


class GenerateError(ValueError):
    """Bad input to generate; the message names the flag or path."""


# ----------------------------------------------------------------------------------------------
# Pure helpers: argument parsing, latent paths.

def parse_seeds(text):
    """'0-35' / '1,5,9' / '0-3,10' -> list of ints, each in 0..2^32-1, in the given order."""
    seeds = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(-?\d+)(?:-(-?\d+))?\s*", part)
        if match is None:
            raise GenerateError(f"--seeds: {part.strip()!r} is not a seed or a range "
                                f"(use e.g. 0-35 or 1,5,9)")
        low = int(match[1])
        high = low if match[2] is None else int(match[2])
        if high < low:
            raise GenerateError(f"--seeds: range {part.strip()!r} runs backwards")
        for seed in (low, high):
            if not 0 <= seed < SEED_LIMIT:
                raise GenerateError(f"--seeds: {seed} is out of range (seeds are "
                                    f"0..{SEED_LIMIT - 1})")
        if high - low >= MAX_SEEDS:
            raise GenerateError(f"--seeds: range {part.strip()!r} has more than {MAX_SEEDS} seeds")
        seeds.extend(range(low, high + 1))
    return seeds


def parse_grid(text):
    """'8x8' -> (columns, rows)."""
    try:
        columns, rows = (int(value) for value in str(text).lower().split("x"))
    except ValueError:
        raise GenerateError(f"--grid: expected COLUMNSxROWS such as 8x8, received {text!r}") from None
    if columns < 1 or rows < 1:
        raise GenerateError(f"--grid: columns and rows must be >= 1, received {text!r}")
    return columns, rows


def lerp(a, b, t):
    """Linear interpolation of [..., L] latents, t in [0, 1]."""
    return a + (b - a) * t


def slerp(a, b, t):
    """Spherical interpolation of [L] latents along the great circle between their directions
    (norms interpolate linearly through the same formula); falls back to lerp when a, b are
    (anti)parallel."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    cos_omega = np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))
    omega = np.arccos(np.clip(cos_omega, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    return (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation_latents(latents, steps, method="slerp"):
    """[K, L] key latents -> [(K - 1) * steps + 1, L]: `steps` frames from each key to the next
    (the key included, the next one not), then the last key."""
    latents = np.asarray(latents, np.float32)
    if latents.shape[0] < 2:
        raise GenerateError("--interp needs at least two seeds (e.g. --seeds 1,5,9)")
    if steps < 1:
        raise GenerateError(f"--steps must be >= 1, received {steps}")
    blend = {"slerp": slerp, "lerp": lerp}[method]
    frames = [blend(start, end, t)
              for start, end in zip(latents[:-1], latents[1:])
              for t in np.arange(steps) / steps]
    frames.append(latents[-1])
    return np.stack(frames).astype(np.float32)


def random_walk_latents(num_frames, num_walks, latent_size, smoothing_frames, seed):
    """[num_frames, num_walks, latent_size] float32: the original's video latents: i.i.d.
    normal per frame from RandomState(seed), Gaussian-smoothed over time with sigma
    `smoothing_frames` (wrapping, so the walk loops), then scaled to unit RMS."""
    random_state = np.random.RandomState(seed)
    latents = random_state.randn(num_frames, num_walks, latent_size).astype(np.float32)
    if smoothing_frames > 0:  # scipy divides by sigma
        latents = scipy.ndimage.gaussian_filter1d(latents, smoothing_frames, axis=0, mode="wrap")
    latents /= np.sqrt(np.mean(np.square(latents)))
    return latents.astype(np.float32)


def parse_layer_range(text):
    """'0-3' or '4,5' -> sorted list of style layer indices."""
    try:
        layers = sorted(set(parse_seeds(text)))
    except GenerateError as error:
        raise GenerateError(f"--style_layers: {error}") from None
    return layers


def style_mixing_grid(model, column_seeds, row_seeds, layers, labels_for, truncation_psi=None,
                      batch_size=16):
    """StyleGAN's figure 3: the top row renders `column_seeds`, the left column `row_seeds`,
    and cell (i, j) row seed i's w with the style layers in `layers` taken from column seed j.
    Returns the uint8 image [(rows + 1) * H, (columns + 1) * W, C]; the corner stays black."""
    column_w = model.dlatents_for_seeds(column_seeds, labels_for(len(column_seeds)),
                                        truncation_psi, batch_size=batch_size)
    row_w = model.dlatents_for_seeds(row_seeds, labels_for(len(row_seeds)), truncation_psi,
                                     batch_size=batch_size)
    if max(layers) >= row_w.shape[1]:
        raise GenerateError(f"--style_layers: this model has {row_w.shape[1]} style layers "
                            f"(0..{row_w.shape[1] - 1}), received up to {max(layers)}")
    tiles = style_mixing_tiles(column_w, row_w, layers,
                               lambda dlatents: model.images_for_dlatents(dlatents, batch_size),
                               background=0)
    return image_grid(tiles, (len(column_seeds) + 1, len(row_seeds) + 1))


# ----------------------------------------------------------------------------------------------
# Loading: progan_tf.generators, with errors naming the flag.

def load_saved_model(path):
    """generators.GeneratorFns of an exported SavedModel (or the latest version in a model
    directory); needs no project code in the export. The truncation psi and cutoff that an
    imported official StyleGAN stores in its serving_meta.json become the defaults."""
    from progan_tf import generators

    try:
        model = generators.from_saved_model(path)
    except generators.GeneratorError as error:
        raise GenerateError(f"--saved_model: {error}") from None
    return with_stored_truncation(model, model.description)


def with_stored_truncation(model, version_dir):
    """`model` with `default_truncation_psi` and `truncation_cutoff` from the export's
    serving_meta.json (`python -m progan_tf.import_official` writes both for StyleGAN; a
    generator config may hold a cutoff other than 8); unchanged when there is none."""
    from exports import META_DIR, META_FILENAME

    try:
        with open(os.path.join(version_dir, META_DIR, META_FILENAME), encoding="utf-8") as file:
            meta = json.load(file)
    except (OSError, ValueError):
        return model
    if not model.has_truncation or not isinstance(meta, dict):
        return model
    config = meta.get("generator_config")
    cutoff = meta.get("truncation_cutoff")
    if cutoff is None and isinstance(config, dict):
        cutoff = config.get("truncation_cutoff")
    psi = meta.get("truncation_psi")
    changes = {}
    if isinstance(psi, (int, float)) and not isinstance(psi, bool):
        changes["default_truncation_psi"] = float(psi)
    if isinstance(cutoff, int) and not isinstance(cutoff, bool):
        changes["truncation_cutoff"] = cutoff
    return dataclasses.replace(model, **changes) if changes else model


def load_pickle(path, network="Gs"):
    """generators.GeneratorFns of an official NVIDIA pickle's Gs (or G), rendering its stored
    noise; StyleGAN's stored truncation psi becomes the default of --trunc."""
    from progan_tf import generators

    try:
        return generators.from_pickle(path, network=network, noise="const",
                                      progress=sys.stderr)
    except generators.GeneratorError as error:
        raise GenerateError(f"--pickle: {error}") from None


def load_checkpoint(path, raw=False):
    """generators.GeneratorFns of a run directory or checkpoint prefix, rendering the stored
    noise as an export does (nothing is written to disk)."""
    from progan_tf import generators

    try:
        return generators.from_run_dir(path, raw=raw, noise="const")[0]
    except generators.GeneratorError as error:
        raise GenerateError(f"--checkpoint: {error}") from None


# ----------------------------------------------------------------------------------------------
# Command line.

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = _Parser(prog="python -m progan_tf.generate",
                     description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--saved_model",
                        help="exported SavedModel: a version directory or the model directory "
                             "(latest numbered version)")
    source.add_argument("--checkpoint",
                        help="run directory (latest checkpoint) or checkpoint prefix")
    source.add_argument("--pickle",
                        help="official NVIDIA ProGAN/StyleGAN pickle (read without running its "
                             "code)")
    parser.add_argument("--network", choices=("Gs", "G"), default=None,
                        help="with --pickle: the network to render (default Gs, the moving "
                             "average)")
    parser.add_argument("--raw", action="store_true",
                        help="with --checkpoint: the trained generator instead of its EMA")
    parser.add_argument("--seeds", default=None,
                        help="seeds 0..2^32-1: ranges and lists such as 0-63 or 1,5,9 "
                             f"(--walk: one seed for the walk, default {WALK_DEFAULT_SEED})")
    parser.add_argument("--out_dir", required=True, help="directory for the PNG/GIF files")
    parser.add_argument("--grid", default=None,
                        help="COLUMNSxROWS, e.g. 8x8: one grid.png instead of one PNG per seed; "
                             "with --walk, that many walks side by side")
    parser.add_argument("--label", type=int, default=None,
                        help="class index for a conditional model (one-hot label)")
    parser.add_argument("--trunc", type=float, default=None,
                        help="truncation psi (StyleGAN only; 1 = none; default: none, or "
                             "the psi an official pickle stores)")
    parser.add_argument("--style_mix", "--style-mix", dest="style_mix", default=None,
                        metavar="COLUMN_SEEDS:ROW_SEEDS",
                        help="StyleGAN exports: style-mixing grid as in the paper's figure 3, "
                             "e.g. 1,2,3:10-12 (columns give the --style_layers styles)")
    parser.add_argument("--style_layers", default="0-3",
                        help="--style_mix: style layers taken from the column seeds "
                             "(0-3 coarse, 4-7 middle, 8- fine)")
    parser.add_argument("--interp", choices=("slerp", "lerp"), default=None,
                        help="interpolate between consecutive seeds instead of one image each")
    parser.add_argument("--steps", type=int, default=30,
                        help="--interp: frames from one seed to the next")
    parser.add_argument("--walk", action="store_true",
                        help="smoothed random walk through latent space (the original's video)")
    parser.add_argument("--duration_sec", type=float, default=10.0, help="--walk: length")
    parser.add_argument("--fps", type=float, default=30.0, help="--walk/--interp: frame rate")
    parser.add_argument("--smoothing_sec", type=float, default=1.0,
                        help="--walk: Gaussian smoothing of the latents over time (sigma)")
    parser.add_argument("--gif", action="store_true",
                        help="--interp/--walk: one animated GIF instead of PNG frames")
    parser.add_argument("--batch_size", type=int, default=16, help="images per generator call")
    return parser


def _labels(model, label, count):
    if model.label_size == 0:
        if label is not None:
            raise GenerateError("--label: this model is unconditional (it has no labels input)")
        return None
    if label is None:
        raise GenerateError(f"--label: this model is conditional: pass a class index "
                            f"0..{model.label_size - 1}")
    if not 0 <= label < model.label_size:
        raise GenerateError(f"--label: {label} is out of range 0..{model.label_size - 1}")
    labels = np.zeros([count, model.label_size], np.float32)
    labels[:, label] = 1.0
    return labels


def _write_frames(frames, out_dir, stem, args):
    os.makedirs(out_dir, exist_ok=True)
    if args.gif:
        path = os.path.join(out_dir, f"{stem}.gif")
        write_gif(frames, path, args.fps)
        return [path]
    paths = []
    for index, frame in enumerate(frames):
        paths.append(os.path.join(out_dir, f"{stem}_{index:05d}.png"))
        write_png(frame, paths[-1])
    return paths


def _check_args(args):
    """(seeds, grid or None) of a command other than --style_mix; GenerateError for flags that
    do not go together."""
    if args.seeds is None and not args.walk:
        raise GenerateError("--seeds is required (e.g. --seeds 0-63)")
    seeds = parse_seeds(args.seeds if args.seeds is not None else str(WALK_DEFAULT_SEED))
    grid = parse_grid(args.grid) if args.grid else None
    if args.walk:
        if len(seeds) != 1:
            raise GenerateError(f"--walk takes one seed for its random state, received {len(seeds)}")
        if args.duration_sec <= 0 or args.fps <= 0 or args.smoothing_sec < 0:
            raise GenerateError("--duration_sec and --fps must be > 0, --smoothing_sec >= 0")
    if args.interp and grid:
        raise GenerateError("--grid does not apply to --interp")
    return seeds, grid


def _load(args):
    if args.saved_model:
        return load_saved_model(args.saved_model)
    if args.pickle:
        return load_pickle(args.pickle, args.network or "Gs")
    return load_checkpoint(args.checkpoint, raw=args.raw)


def generate(args):
    """Run one command; returns the list of files written."""
    if args.interp and args.walk:
        raise GenerateError("--interp and --walk exclude each other")
    if args.raw and not args.checkpoint:
        raise GenerateError("--raw applies to --checkpoint only")
    if args.network and not args.pickle:
        raise GenerateError("--network applies to --pickle only")
    if args.batch_size < 1:
        raise GenerateError(f"--batch_size must be >= 1, received {args.batch_size}")
    if args.gif and not (args.interp or args.walk):
        raise GenerateError("--gif applies to --interp and --walk")
    if args.style_mix is not None:
        return _style_mix(args)
    seeds, grid = _check_args(args)
    model = _load(args)
    if args.trunc is not None and args.trunc != 1.0:
        if not model.has_truncation:
            raise GenerateError("--trunc: this model has no truncation (ProGAN never truncates; "
                                "a StyleGAN export's generate_seeds takes truncation_psi); "
                                "omit --trunc")
        if args.interp or args.walk:
            raise GenerateError("--trunc applies to per-seed images and grids only")
    if args.walk:
        return _walk(model, seeds[0], grid or (1, 1), args)
    if args.interp:
        return _interpolation(model, seeds, args)
    return _seed_images(model, seeds, grid, args)


def _truncation_psi(model, args):
    """--trunc, else the model's default psi (an official StyleGAN pickle's stored one); None
    for psi 1, which truncates nothing (as G_style treats it)."""
    psi = args.trunc if args.trunc is not None else model.default_truncation_psi
    return None if psi == 1.0 else psi


def _walk(model, seed, grid, args):
    """The original's smoothed random walk: `grid` walks side by side in every frame."""
    columns, rows = grid
    num_frames = max(int(np.rint(args.duration_sec * args.fps)), 1)
    latents = random_walk_latents(num_frames, columns * rows, model.latent_size,
                                  args.smoothing_sec * args.fps, seed)
    labels = _labels(model, args.label, num_frames * columns * rows)
    images = model.images_for_latents(latents.reshape(-1, model.latent_size), labels,
                                      args.batch_size)
    images = images.reshape((num_frames, columns * rows) + images.shape[1:])
    frames = np.stack([image_grid(frame, grid) for frame in images])
    return _write_frames(frames, args.out_dir, "walk", args)


def _interpolation(model, seeds, args):
    from progan_tf.generators import seed_latents

    latents = interpolation_latents(seed_latents(seeds, model.latent_size), args.steps,
                                    args.interp)
    labels = _labels(model, args.label, len(latents))
    frames = model.images_for_latents(latents, labels, args.batch_size)
    return _write_frames(frames, args.out_dir, "interp", args)


def _seed_images(model, seeds, grid, args):
    """One PNG per seed, or one grid.png."""
    labels = _labels(model, args.label, len(seeds))
    if grid and len(seeds) > grid[0] * grid[1]:
        raise GenerateError(f"--grid {args.grid} holds {grid[0] * grid[1]} images, "
                            f"received {len(seeds)} seeds")
    images = model.images_for_seeds(seeds, labels, _truncation_psi(model, args),
                                    args.batch_size)
    os.makedirs(args.out_dir, exist_ok=True)
    if grid:
        path = os.path.join(args.out_dir, "grid.png")
        write_png(image_grid(images, grid), path)
        return [path]
    paths = []
    for seed, image in zip(seeds, images):
        paths.append(os.path.join(args.out_dir, f"seed{seed:04d}.png"))
        write_png(image, paths[-1])
    return paths


def _style_mix(args):
    if args.interp or args.walk or args.grid or args.seeds is not None:
        raise GenerateError("--style_mix takes its seeds itself (COLUMN_SEEDS:ROW_SEEDS); "
                            "it excludes --seeds, --grid, --interp and --walk")
    if args.style_mix.count(":") != 1:
        raise GenerateError(f"--style_mix: expected COLUMN_SEEDS:ROW_SEEDS such as 1,2,3:10-12, "
                            f"received {args.style_mix!r}")
    column_text, row_text = args.style_mix.split(":")
    column_seeds, row_seeds = parse_seeds(column_text), parse_seeds(row_text)
    layers = parse_layer_range(args.style_layers)
    model = _load(args)
    if not model.has_styles:
        raise GenerateError("--style_mix needs a StyleGAN generator (mapping and synthesis "
                            "signatures); this one has none")
    grid = style_mixing_grid(model, column_seeds, row_seeds, layers,
                             lambda count: _labels(model, args.label, count),
                             _truncation_psi(model, args),
                             args.batch_size)
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "style_mix.png")
    write_png(grid, path)
    return [path]


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        paths = generate(args)
    except GenerateError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(paths)} file(s) to {args.out_dir}"
          + (f": {os.path.basename(paths[0])}" if len(paths) == 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
