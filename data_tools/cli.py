"""Command line: `python -m data_tools <command> ...`, in the spirit and argument order of the
original `dataset_tool.py` (`create_x <tfrecord_dir> <source>`). Errors print one line naming the
file and the problem, and exit with status 1; an interrupted create leaves nothing behind."""

import argparse
import functools
import os
import sys

from data_tools.errors import DataError
from progan_tf.utils.progress import format_count

PROG = "python -m data_tools"


def _background(text):
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not R,G,B or one grey value 0-255") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not all(0 <= value <= 255 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not R,G,B or one grey value 0-255")
    return tuple(values)


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Create, inspect and check multi-resolution TFRecord datasets in the "
        "original ProGAN format (<name>-rXX.tfrecords + <name>-rxx.labels).",
        epilog=f'Type "{PROG} <command> --help" for the options of one command.')
    commands = parser.add_subparsers(dest="command", metavar="<command>")
    commands.required = True
    _add_inspection_commands(commands)
    _add_dataset_release_commands(commands)
    _add_image_collection_commands(commands)
    return parser


def _command(commands, name, description, example):
    return commands.add_parser(name, help=description, description=description,
                               epilog=f"Example: {PROG} {example}")


def _create_command(commands, name, description, example):
    """A create_* command: the new dataset directory first, then the command's source arguments."""
    sub = _command(commands, name, description, example)
    sub.add_argument("tfrecord_dir", help="new dataset directory")
    _overwrite(sub)
    return sub


def _overwrite(sub):
    sub.add_argument("--overwrite", action="store_true",
                     help="replace an existing output directory (only if it holds nothing but a pyramid)")


def _add_inspection_commands(commands):
    """info, display, verify, extract, compare."""
    command = functools.partial(_command, commands)
    sub = command("info", "Print levels, record counts, resolution, channels and labels of a dataset.",
                  "info datasets/fashion-mnist-32")
    sub.add_argument("tfrecord_dir", help="dataset directory")

    sub = command("display", "Print info and show (or write) a grid of the first images.",
                  "display datasets/fashion-mnist-32 --output grid.png")
    sub.add_argument("tfrecord_dir", help="dataset directory")
    sub.add_argument("--output", help="write the grid to this PNG file instead of showing it")
    sub.add_argument("--resolution", type=int, help="level to show (default: the top level)")
    sub.add_argument("--num_images", type=_positive, default=16, help="images in the grid (default: 16)")

    sub = command("verify", "Check every record of every level (checksums, shapes, counts, labels) and that "
                  "lower levels are consistent with the top level.", "verify datasets/fashion-mnist-32")
    sub.add_argument("tfrecord_dir", help="dataset directory")
    sub.add_argument("--tolerance", type=int, default=0,
                     help="largest accepted difference between a stored lower level and the one computed "
                          "from the top level, in grey levels (default: 0)")

    sub = command("extract", "Write the images of one level as img%%08d.png files, in record order.",
                  "extract datasets/fashion-mnist-32 fashion-images")
    sub.add_argument("tfrecord_dir", help="dataset directory")
    sub.add_argument("output_dir", help="directory to extract the images into")
    sub.add_argument("--resolution", type=int, help="level to extract (default: the top level)")
    _overwrite(sub)

    sub = command("compare", "Compare two datasets image by image at every level, and their labels.",
                  "compare datasets/mine datasets/theirs")
    sub.add_argument("tfrecord_dir_a", help="first dataset directory")
    sub.add_argument("tfrecord_dir_b", help="second dataset directory")
    sub.add_argument("--ignore_labels", type=int, default=0, choices=(0, 1), help="ignore labels (default: 0)")


def _add_dataset_release_commands(commands):
    """create_embedded and the published datasets: MNIST, CIFAR-10/100, SVHN."""
    command = functools.partial(_create_command, commands)
    command("create_embedded", "Create the quickstart dataset: the Fashion-MNIST subset shipped with "
              "data_tools (12,000 images, 1x32x32, one-hot labels). Succeeds at once if the directory "
              "already holds exactly this pyramid.", "create_embedded datasets/fashion-mnist-32")

    sub = command("create_mnist", "Create a 1x32x32 dataset with one-hot labels from MNIST-style IDX files "
                  "(MNIST, Fashion-MNIST; .gz or not).", "create_mnist datasets/mnist ~/downloads/mnist")
    sub.add_argument("mnist_dir", help="directory with train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz)")
    sub.add_argument("--split", default="train", choices=("train", "t10k", "all"),
                     help="which files: train (default, as the original), t10k, or all (train then t10k)")

    sub = command("create_mnistrgb", "Create a 3x32x32 dataset of random MNIST digit triples (R, G, B).",
                  "create_mnistrgb datasets/mnistrgb ~/downloads/mnist")
    sub.add_argument("mnist_dir", help="directory containing MNIST")
    sub.add_argument("--num_images", type=_positive, default=1000000,
                     help="number of composite images to create (default: 1000000)")
    sub.add_argument("--random_seed", type=int, default=123, help="random seed (default: 123)")

    sub = command("create_cifar10", "Create a 3x32x32 dataset with one-hot labels from CIFAR-10 "
                  "(binary or python release; pickles are read without running code).",
                  "create_cifar10 datasets/cifar10 ~/downloads/cifar-10-batches-py")
    sub.add_argument("cifar10_dir", help="directory containing CIFAR-10")

    sub = command("create_cifar100", "Create a 3x32x32 dataset with one-hot fine labels from CIFAR-100 "
                  "(binary or python release).", "create_cifar100 datasets/cifar100 ~/downloads/cifar-100-python")
    sub.add_argument("cifar100_dir", help="directory containing CIFAR-100")

    sub = command("create_svhn", "Create a 3x32x32 dataset with one-hot labels from the original's pickled "
                  "SVHN batches train_1.pkl .. train_3.pkl.", "create_svhn datasets/svhn ~/downloads/svhn")
    sub.add_argument("svhn_dir", help="directory containing train_1.pkl .. train_3.pkl")


def _add_image_collection_commands(commands):
    """LSUN, CelebA, a folder of images, a legacy HDF5 archive."""
    command = functools.partial(_create_command, commands)

    sub = command("create_lsun", "Create a dataset from one LSUN category (LMDB): centre crop and resize, in "
                  "database order. Needs the optional lmdb package (pip install \"progan-tf[lsun]\").",
                  "create_lsun datasets/lsun-car-100k ~/downloads/lsun/car_lmdb --resolution 256 "
                  "--max_images 100000")
    sub.add_argument("lmdb_dir", help="directory containing the LMDB database")
    sub.add_argument("--resolution", type=int, default=256, help="output resolution (default: 256)")
    sub.add_argument("--max_images", type=_positive, help="maximum number of images (default: all)")
    sub.add_argument("--skip_bad", action="store_true", help="skip undecodable entries and list them")

    sub = command("create_celeba", "Create a 3x128x128 dataset from aligned CelebA (the original's crop).",
                  "create_celeba datasets/celeba ~/downloads/celeba")
    sub.add_argument("celeba_dir", help="directory containing img_align_celeba_png/ or img_align_celeba/")
    sub.add_argument("--cx", type=int, default=89, help="crop centre x (default: 89)")
    sub.add_argument("--cy", type=int, default=121, help="crop centre y (default: 121)")

    sub = command("create_from_images", "Create a dataset from a folder tree of PNG/JPEG/WebP images "
                  "(sorted by relative path). Images must be square and of one size unless --center_crop / "
                  "--resize; 1 channel if all are grayscale, else 3; alpha is composited over --background.",
                  "create_from_images datasets/mydataset myimagedir --center_crop --resize 256")
    sub.add_argument("image_dir", help="directory containing the images (searched recursively)")
    sub.add_argument("--shuffle", type=int, default=1, choices=(0, 1), help="randomize image order (default: 1)")
    sub.add_argument("--resize", type=int, help="resize every image to RxR (Lanczos); R a power of two")
    sub.add_argument("--center_crop", action="store_true", help="crop non-square images to their central square")
    sub.add_argument("--background", type=_background, default=(255, 255, 255),
                     help="colour under transparent pixels, R,G,B or one grey value (default: 255,255,255)")
    sub.add_argument("--skip_bad", action="store_true",
                     help="skip unreadable or truncated images and list them (decodes every image twice)")

    sub = command("create_from_hdf5", "Create a dataset from a legacy HDF5 archive ([N, C, H, W] data*).",
                  "create_from_hdf5 datasets/celebahq ~/downloads/celeba-hq-1024x1024.h5")
    sub.add_argument("hdf5_filename", help="HDF5 archive containing the images")
    sub.add_argument("--shuffle", type=int, default=1, choices=(0, 1), help="randomize image order (default: 1)")


def _summary(tfrecord_dir, manifest):
    resolution, channels = manifest["resolution"], manifest["num_channels"]
    num_levels = resolution.bit_length() - 2
    labels = f"labels [{manifest['num_images']:,}, {manifest['label_size']}]" if manifest["label_size"] else "no labels"
    total = sum(manifest["files"].values())
    seconds = manifest.get("seconds", 0.0)
    rate = manifest["num_images"] / seconds if seconds else 0.0
    lines = [f"Created {tfrecord_dir}: {format_count(manifest['num_images'])} images, "
             f"{channels}x{resolution}x{resolution}, {num_levels} levels (4x4 .. {resolution}x{resolution}), "
             f"{labels}; {total / 1e6:,.1f} MB in {seconds:.1f} s ({rate:,.0f} img/s)"]
    skipped = manifest.get("skipped") or []
    if skipped:
        lines.append(f"Skipped {len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''}:")
        lines += [f"  {item}" for item in skipped[:20]]
        if len(skipped) > 20:
            lines.append(f"  ... and {len(skipped) - 20} more")
    if manifest.get("ignored_files"):
        lines.append(f"Ignored {manifest['ignored_files']} files that are not PNG/JPEG/WebP images")
    if manifest.get("note"):
        lines.append(f"Note: {manifest['note']}")
    return lines


def run(args):
    """Runs one parsed command. Returns (exit status, output lines)."""
    from data_tools import commands  # noqa: PLC0415

    name = args.command
    if name == "info":
        return 0, commands.info(args.tfrecord_dir)
    if name == "display":
        return 0, commands.display(args.tfrecord_dir, output=args.output, resolution=args.resolution,
                                   num_images=args.num_images)
    if name == "verify":
        ok, lines = commands.verify(args.tfrecord_dir, tolerance=args.tolerance)
        return (0 if ok else 1), lines
    if name == "extract":
        return 0, commands.extract(args.tfrecord_dir, args.output_dir, resolution=args.resolution,
                                   overwrite=args.overwrite)
    if name == "compare":
        identical, lines = commands.compare(args.tfrecord_dir_a, args.tfrecord_dir_b,
                                            ignore_labels=bool(args.ignore_labels))
        return (0 if identical else 1), lines
    if name == "create_embedded":
        from data_tools.sources.embedded import create_embedded  # noqa: PLC0415

        manifest = create_embedded(args.tfrecord_dir, overwrite=args.overwrite)
        if manifest["up_to_date"]:
            return 0, [f"{args.tfrecord_dir} is up to date: the embedded Fashion-MNIST pyramid, "
                       f"{format_count(manifest['num_images'])} images, 1x32x32, labels "
                       f"[{manifest['num_images']:,}, {manifest['label_size']}]"]
        return 0, _summary(args.tfrecord_dir, manifest)
    manifest = _create(args)
    return 0, _summary(args.tfrecord_dir, manifest)


def _create(args):
    name, out, overwrite = args.command, args.tfrecord_dir, args.overwrite
    if name == "create_mnist":
        from data_tools.sources.mnist import create_mnist  # noqa: PLC0415

        return create_mnist(out, args.mnist_dir, split=args.split, overwrite=overwrite)
    if name == "create_mnistrgb":
        from data_tools.sources.mnist import create_mnistrgb  # noqa: PLC0415

        return create_mnistrgb(out, args.mnist_dir, num_images=args.num_images, random_seed=args.random_seed,
                               overwrite=overwrite)
    if name == "create_cifar10":
        from data_tools.sources.cifar import create_cifar10  # noqa: PLC0415

        return create_cifar10(out, args.cifar10_dir, overwrite=overwrite)
    if name == "create_cifar100":
        from data_tools.sources.cifar import create_cifar100  # noqa: PLC0415

        return create_cifar100(out, args.cifar100_dir, overwrite=overwrite)
    if name == "create_svhn":
        from data_tools.sources.svhn import create_svhn  # noqa: PLC0415

        return create_svhn(out, args.svhn_dir, overwrite=overwrite)
    if name == "create_lsun":
        from data_tools.sources.lsun import create_lsun  # noqa: PLC0415

        return create_lsun(out, args.lmdb_dir, resolution=args.resolution, max_images=args.max_images,
                           skip_bad=args.skip_bad, overwrite=overwrite)
    if name == "create_celeba":
        from data_tools.sources.celeba import create_celeba  # noqa: PLC0415

        return create_celeba(out, args.celeba_dir, cx=args.cx, cy=args.cy, overwrite=overwrite)
    if name == "create_from_images":
        from data_tools.sources.images import create_from_images  # noqa: PLC0415

        return create_from_images(out, args.image_dir, shuffle=bool(args.shuffle), resize=args.resize,
                                  center_crop=args.center_crop, background=args.background,
                                  skip_bad=args.skip_bad, overwrite=overwrite)
    if name == "create_from_hdf5":
        from data_tools.sources.hdf5 import create_from_hdf5  # noqa: PLC0415

        return create_from_hdf5(out, args.hdf5_filename, shuffle=bool(args.shuffle), overwrite=overwrite)
    raise AssertionError(name)


def main(argv=None):
    """Entry point; returns the exit status (0 success, 1 error or failed check, 130 interrupted)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The commands do no floating-point work in TensorFlow; this only silences its start-up notice.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        status, lines = run(args)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    for line in lines:
        print(line)
    return status
