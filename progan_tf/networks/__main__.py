"""python -m progan_tf.networks --resolution 1024: per-layer table and parameter totals."""

import argparse

from progan_tf import architectures
from progan_tf.networks.base import log2_resolution
from progan_tf.networks.summary import format_summary, parameters_up_to


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m progan_tf.networks",
        description="Print ProGAN's generator and discriminator layer by layer, with totals.")
    parser.add_argument("--architecture", choices=architectures.NAMES, default="progan",
                        help="generator architecture (the discriminator is ProGAN's; StyleGAN's "
                             "adds a blur before each downsampling)")
    parser.add_argument("--resolution", type=int, default=1024, help="final resolution (4..1024)")
    parser.add_argument("--num_channels", type=int, default=3, help="image channels")
    parser.add_argument("--label_size", type=int, default=0, help="conditioning labels")
    parser.add_argument("--fmap_base", type=int, default=8192, help="channel formula base")
    parser.add_argument("--fmap_max", type=int, default=512, help="channel formula maximum")
    parser.add_argument("--latent_size", type=int, default=None, help="default: nf(0)")
    args = parser.parse_args(argv)
    try:
        log2_resolution(args.resolution, "--resolution")
    except ValueError as error:
        parser.error(str(error))
    common = dict(resolution=args.resolution, num_channels=args.num_channels,
                  label_size=args.label_size, fmap_base=args.fmap_base, fmap_max=args.fmap_max)
    arch = architectures.get(args.architecture)
    generator = arch.generator_class(**common, **(
        {"latent_size": args.latent_size} if args.latent_size else {}))
    discriminator = arch.build_discriminator(**common)
    for network in (generator, discriminator):
        print(format_summary(network))
        print()
    print(f"{'resolution':>10}{'G total':>16}{'D total':>16}")
    for res in generator.resolutions:
        print(f"{res:>10}{parameters_up_to(generator, res):>16,}"
              f"{parameters_up_to(discriminator, res):>16,}")


if __name__ == "__main__":
    main()
