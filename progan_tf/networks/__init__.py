"""The networks: growing machinery (`base`), ProGAN's generator and discriminator (`progan`),
StyleGAN's generator (`stylegan`) and the per-layer tables (`summary`).

    from progan_tf.networks import Generator, Discriminator, StyleGenerator
    python -m progan_tf.networks --resolution 1024   # per-layer table and parameter totals
"""

from progan_tf.networks.base import (Block, GrowingGenerator, GrowingNetwork, count_params,
                                     log2_resolution, nf)
from progan_tf.networks.progan import (Discriminator, DiscriminatorBlock, DiscriminatorOutputBlock,
                                       FromRGB, Generator, GeneratorBlock, GeneratorInputBlock)
from progan_tf.networks.stylegan import (MappingNetwork, StyleGenerator, SynthesisBlock,
                                         SynthesisInputBlock, draw_mixing_cutoff, mix_styles,
                                         num_layers_at, stylegan_discriminator, truncate)
from progan_tf.networks.summary import format_summary, parameters_up_to

__all__ = [
    "Block", "Discriminator", "DiscriminatorBlock", "DiscriminatorOutputBlock", "FromRGB",
    "Generator", "GeneratorBlock", "GeneratorInputBlock", "GrowingGenerator", "GrowingNetwork",
    "MappingNetwork", "StyleGenerator", "SynthesisBlock", "SynthesisInputBlock", "count_params",
    "draw_mixing_cutoff", "format_summary", "log2_resolution", "mix_styles", "nf",
    "num_layers_at", "parameters_up_to", "stylegan_discriminator", "truncate",
]
