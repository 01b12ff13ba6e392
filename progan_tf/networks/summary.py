"""Per-layer tables, parameter counts (SPEC 1.1 counting) and FLOP counts of the networks and of
one training iteration, counted from the layer shapes.

    ops = forward_ops(discriminator, 32)              # [FlopOp(name, kind, flops per sample)]
    flops = iteration_flops(generator, discriminator, 32, batch=16)
    print(format_iteration_flops(flops))              # parts, multipliers, total

A FLOP is one floating-point operation: a multiply-add counts 2, as PyTorch's FLOP counter and
the papers do. Weight ops (convolutions and dense layers) are counted exactly from the shapes,
as they run (the fused resampling convolutions as the stride-2 4x4 convolutions they are);
the elementwise work (bias, leaky ReLU, pixel norm, minibatch stddev, resampling, fade-in,
blur, noise, AdaIN) with the per-element costs of `ELEMENTWISE_FLOPS`, and reported apart: it
is memory-bound, so its FLOPs say little about its time.
"""

import math
from typing import NamedTuple

from progan_tf.networks.base import count_params
from progan_tf.networks.progan import (DiscriminatorBlock, DiscriminatorOutputBlock, FromRGB,
                                       GeneratorBlock, GeneratorInputBlock)
from progan_tf.networks.stylegan import MappingNetwork, SynthesisBlock, SynthesisInputBlock


def parameters_up_to(network, res):
    """Trainable parameters of `network`'s model at `res`: blocks <= res and one
    toRGB/fromRGB per resolution <= res (SPEC 1.1 counting), plus StyleGAN's mapping network:
    the network's `counted_layers(res)`."""
    return sum(count_params(layer) for layer in network.counted_layers(res))


def format_summary(network):
    """Per-layer table (name, output shape, parameters) and the total, as text."""
    rows = network.summary_rows()
    width = max(len(name) for name, _, _ in rows) + 2
    lines = [f"{'layer':<{width}}{'output shape':<22}{'parameters':>14}", "-" * (width + 36)]
    for name, shape, params in rows:
        lines.append(f"{name:<{width}}{str(tuple(shape)):<22}{params:>14,}")
    lines.append("-" * (width + 36))
    lines.append(f"{'total ' + network.name:<{width + 22}}{count_params(network):>14,}")
    return "\n".join(lines)


# --- FLOPs of one forward pass --------------------------------------------------------------

WEIGHT_KINDS = ("conv", "dense")

# Forward FLOPs per element (of the op's input, [N, H, W, C]) of the elementwise work. Only the
# per-element terms are counted; per-pixel or per-group terms (rsqrt, sqrt, epsilon) are < 1/C.
ELEMENTWISE_FLOPS = {
    "bias": 1,          # x + b
    "lrelu": 2,         # max(x, 0.2 x)
    "pixel_norm": 3,    # square, mean over C, multiply by the rsqrt
    "mbstd": 4,         # group mean, subtract, square, group mean
    "downsample": 1,    # 2x2 average: 3 adds and a multiply per output = 1 per input element
    "fade": 3,          # old + alpha * (new - old)
    "blur": 18,         # depthwise 3x3: 9 multiply-adds
    "noise": 2,         # x + weight * noise image
    "adain": 7,         # instance norm (mean, subtract, square, mean, multiply), x * (1 + s) + b
}
# Nearest upsampling, reshapes, concatenation and the constant input move data: 0 FLOPs.


class FlopOp(NamedTuple):
    """One op of a forward pass: `name` (e.g. "block_16x16/conv0"), `kind` (a WEIGHT_KINDS
    entry or an ELEMENTWISE_FLOPS key) and its forward FLOPs per sample."""

    name: str
    kind: str
    flops: int


class ForwardFlops(NamedTuple):
    """Forward FLOPs of a network at one resolution: `weights` (conv + dense) and
    `elementwise`, per sample or per batch."""

    weights: int
    elementwise: int

    @property
    def total(self):
        return self.weights + self.elementwise

    def __mul__(self, factor):
        return ForwardFlops(self.weights * factor, self.elementwise * factor)

    __rmul__ = __mul__


def _conv(name, kernel, channels_in, filters, height, width=None):
    """A k x k convolution computing `height` x `width` outputs: 2 k^2 C_in C_out H W."""
    width = height if width is None else width
    return FlopOp(name, "conv", 2 * kernel * kernel * channels_in * filters * height * width)


def _dense(name, fan_in, units):
    return FlopOp(name, "dense", 2 * fan_in * units)


def _elementwise(name, kind, elements):
    return FlopOp(name, kind, ELEMENTWISE_FLOPS[kind] * elements)


def _weight_layer(op, layer, outputs):
    """`op` and, when `layer` has a bias, its addition over `outputs` elements."""
    return [op] + ([_elementwise(f"{op.name}/bias", "bias", outputs)] if layer.use_bias else [])


def _generator_input_ops(block, fan_in):
    name, f = block.name, block.filters
    ops = [_elementwise(f"{name}/pixel_norm_latents", "pixel_norm", fan_in)] \
        if block.normalize_latents else []
    ops += _weight_layer(_dense(f"{name}/dense", fan_in, 16 * f), block.dense, 16 * f)
    ops.append(_elementwise(f"{name}/dense_bias", "bias", 16 * f))
    ops.append(_elementwise(f"{name}/dense/lrelu", "lrelu", 16 * f))
    if block.use_pixelnorm:
        ops.append(_elementwise(f"{name}/dense/pixel_norm", "pixel_norm", 16 * f))
    ops += _weight_layer(_conv(f"{name}/conv", 3, f, f, 4), block.conv, 16 * f)
    ops.append(_elementwise(f"{name}/conv/lrelu", "lrelu", 16 * f))
    if block.use_pixelnorm:
        ops.append(_elementwise(f"{name}/conv/pixel_norm", "pixel_norm", 16 * f))
    return ops


def _upsample_conv(block, layer, channels_in, filters, res):
    """The op of an UpsampleConv2D with res x res outputs: fused, a stride-2 transposed 4x4 conv
    over the res/2 input; else nearest upsampling (0 FLOPs), then a 3x3 conv at res."""
    if layer.fused:
        return _conv(f"{block.name}/{layer.name} (fused)", 4, channels_in, filters, res // 2)
    return _conv(f"{block.name}/{layer.name}", 3, channels_in, filters, res)


def _generator_block_ops(block, channels_in, res):
    ops, f = [], block.filters
    for op, layer in ((_upsample_conv(block, block.conv0, channels_in, f, res), block.conv0),
                      (_conv(f"{block.name}/conv1", 3, f, f, res), block.conv1)):
        ops += _weight_layer(op, layer, res * res * f)
        ops.append(_elementwise(f"{op.name}/lrelu", "lrelu", res * res * f))
        if block.use_pixelnorm:
            ops.append(_elementwise(f"{op.name}/pixel_norm", "pixel_norm", res * res * f))
    return ops


def _epilogue_ops(block, index, res, channels):
    name, elements = f"{block.name}/epilogue{index}", res * res * channels
    adain = getattr(block, f"adain{index}")
    return [_elementwise(f"{name}/noise", "noise", elements),
            _elementwise(f"{name}/bias", "bias", elements),
            _elementwise(f"{name}/lrelu", "lrelu", elements),
            *_weight_layer(_dense(f"{name}/style", block.dlatent_size, 2 * channels),
                           adain.style, 2 * channels),
            _elementwise(f"{name}/adain", "adain", elements)]


def _synthesis_block_ops(block, channels_in, res):
    f = block.filters
    if isinstance(block, SynthesisInputBlock):
        ops = _epilogue_ops(block, 0, 4, f)
    else:
        ops = [_upsample_conv(block, block.conv0_up, channels_in, f, res)]
        if block.blur is not None:
            ops.append(_elementwise(f"{block.name}/blur", "blur", res * res * f))
        ops += _epilogue_ops(block, 0, res, f)
    conv1 = block.conv if isinstance(block, SynthesisInputBlock) else block.conv1
    ops += _weight_layer(_conv(f"{block.name}/{conv1.name}", 3, f, f, res), conv1, res * res * f)
    return ops + _epilogue_ops(block, 1, res, f)


def _mapping_ops(mapping):
    name, fan_in, ops = mapping.name, mapping.latent_size, []
    if mapping.label_size:
        ops.append(_dense(f"{name}/label_embedding", mapping.label_size, mapping.latent_size))
        fan_in *= 2
    if mapping.normalize_latents:
        ops.append(_elementwise(f"{name}/pixel_norm", "pixel_norm", fan_in))
    for index in range(mapping.mapping_layers):
        dense = getattr(mapping, f"dense_{index}")
        ops += _weight_layer(_dense(f"{name}/{dense.name}", fan_in, dense.units), dense,
                             dense.units)
        ops.append(_elementwise(f"{name}/{dense.name}/lrelu", "lrelu", dense.units))
        fan_in = dense.units
    return ops


def _to_rgb_ops(network, res):
    layer = network.image_layer_at(res)
    return _weight_layer(_conv(layer.name, 1, network.filters_at(res), network.num_channels, res),
                         layer, res * res * network.num_channels)


def _generator_ops(generator, res, style_mixing=False):
    ops = []
    if isinstance(generator.block_at(4), SynthesisInputBlock):
        ops += _mapping_ops(generator.mapping) * (2 if style_mixing else 1)
        block_ops = _synthesis_block_ops
    else:
        ops += _generator_input_ops(generator.block_at(4),
                                    generator.latent_size + generator.label_size)
        block_ops = _generator_block_ops
    channels = generator.filters_at(4)
    if isinstance(generator.block_at(4), SynthesisInputBlock):
        ops += block_ops(generator.block_at(4), channels, 4)
    for r in generator.resolutions[1:generator.resolutions.index(res) + 1]:
        ops += block_ops(generator.block_at(r), channels, r)
        channels = generator.filters_at(r)
    if res > 4:  # fade-in: the old path's toRGB at res/2 (upsampled: 0 FLOPs), then the blend
        ops += _to_rgb_ops(generator, res // 2)
    ops += _to_rgb_ops(generator, res)
    if res > 4:
        ops.append(_elementwise("fade", "fade", res * res * generator.num_channels))
    return ops


def _from_rgb_ops(discriminator, res):
    layer = discriminator.from_rgb_at(res)
    assert isinstance(layer, FromRGB)
    outputs = res * res * layer.filters
    op = _conv(f"{layer.name}/conv", 1, discriminator.num_channels, layer.filters, res)
    return (_weight_layer(op, layer.conv, outputs)
            + [_elementwise(f"{layer.name}/lrelu", "lrelu", outputs)])


def _discriminator_block_ops(block, channels_in, res):
    assert isinstance(block, DiscriminatorBlock)
    name, f0, f1 = block.name, block.filters0, block.filters1
    ops = _weight_layer(_conv(f"{name}/conv0", 3, channels_in, f0, res), block.conv0,
                        res * res * f0)
    ops.append(_elementwise(f"{name}/conv0/lrelu", "lrelu", res * res * f0))
    if block.blur is not None:
        ops.append(_elementwise(f"{name}/blur", "blur", res * res * f0))
    if block.fused_scale:  # conv + pool as one stride-2 4x4 conv, then bias and lrelu at res/2
        conv1 = _conv(f"{name}/{block.conv1.name} (fused down)", 4, f0, f1, res // 2)
        after, pool = (res // 2) ** 2 * f1, []
    else:  # bias and lrelu at res, then pool
        conv1 = _conv(f"{name}/{block.conv1.name}", 3, f0, f1, res)
        after, pool = res * res * f1, [_elementwise(f"{name}/downsample", "downsample",
                                                    res * res * f1)]
    ops.append(conv1)
    if block.conv1.use_bias:
        ops.append(_elementwise(f"{conv1.name}/bias", "bias", after))
    ops.append(_elementwise(f"{conv1.name}/lrelu", "lrelu", after))
    return ops + pool


def _discriminator_output_ops(block, channels_in):
    assert isinstance(block, DiscriminatorOutputBlock)
    name, ops = block.name, []
    if block.mbstd is not None:
        ops.append(_elementwise(f"{name}/minibatch_stddev", "mbstd", 16 * channels_in))
        channels_in += block.mbstd_num_features
    f = block.filters
    ops += _weight_layer(_conv(f"{name}/conv", 3, channels_in, f, 4), block.conv, 16 * f)
    ops.append(_elementwise(f"{name}/conv/lrelu", "lrelu", 16 * f))
    ops += _weight_layer(_dense(f"{name}/dense0", 16 * f, block.dense_units), block.dense0,
                         block.dense_units)
    ops.append(_elementwise(f"{name}/dense0/lrelu", "lrelu", block.dense_units))
    units = 1 + block.label_size
    return ops + _weight_layer(_dense(f"{name}/dense1", block.dense_units, units), block.dense1,
                               units)


def _discriminator_ops(discriminator, res):
    ops = _from_rgb_ops(discriminator, res)
    if res > 4:  # fade-in: the old path reads the 2x2-averaged images through fromRGB at res/2
        ops += _discriminator_block_ops(discriminator.block_at(res), discriminator.filters_at(res),
                                        res)
        ops.append(_elementwise("downsample_old", "downsample",
                                res * res * discriminator.num_channels))
        ops += _from_rgb_ops(discriminator, res // 2)
        ops.append(_elementwise("fade", "fade", (res // 2) ** 2 * discriminator.filters_at(res // 2)))
        for r in reversed(discriminator.resolutions[1:discriminator.resolutions.index(res)]):
            ops += _discriminator_block_ops(discriminator.block_at(r), discriminator.filters_at(r),
                                            r)
    return ops + _discriminator_output_ops(discriminator.block_at(4), discriminator.filters_at(4))


def forward_ops(network, res, style_mixing=False):
    """The ops of `network.model_for(res)` at fade-in (both paths when res > 4), in order, as
    [FlopOp] with FLOPs per sample. Generators (ProGAN's, StyleGAN's with its mapping network,
    run twice with `style_mixing`) or the discriminator (ProGAN's or StyleGAN's blurred one)."""
    network.check_resolution(res)
    if network.IMAGE_LAYER == "to_rgb":
        return _generator_ops(network, res, style_mixing)
    return _discriminator_ops(network, res)


def forward_flops(network, res, style_mixing=False):
    """ForwardFlops per sample of `network.model_for(res)` (see `forward_ops`)."""
    ops = forward_ops(network, res, style_mixing)
    weights = sum(op.flops for op in ops if op.kind in WEIGHT_KINDS)
    return ForwardFlops(weights, sum(op.flops for op in ops) - weights)


def flops_by_kind(ops):
    """{kind: FLOPs} of a list of FlopOp, in the order the kinds first appear."""
    out = {}
    for op in ops:
        out[op.kind] = out.get(op.kind, 0) + op.flops
    return out


# --- FLOPs of one training iteration ----------------------------------------------------------

# Multipliers of a network's forward FLOPs, for every op alike (weight and elementwise):
# - forward: 1.
# - backward: 2 = the gradient w.r.t. each op's input (one transposed op of the forward's
#   size) + the gradient w.r.t. its weights (another). Where only input gradients are needed
#   (D inside the G step: the tape asks for G's variables only), 1.
# - the penalty's first backward (gradient of the summed critic w.r.t. the images, no weight
#   gradients): 1.
# - the penalty's double backward (gradients of the penalty w.r.t. D's weights through the
#   forward pass and the first backward): 4. Through the first backward's graph: each of its
#   input-gradient ops dx = conv_transpose(dy, W) needs its own gradients w.r.t. dy (a forward
#   conv) and w.r.t. W (a filter gradient): 2. Through the forward graph: the minibatch stddev
#   layer's gradient depends on its input, so a gradient flows back into the forward
#   activations and from there through every earlier layer to the weights (input and weight
#   gradients): 2. (Leaky ReLU's second derivative is zero, but TensorFlow and PyTorch both
#   return a zero tensor and propagate it, so the pass runs whatever the values.)
# Checked against the ops TensorFlow runs (`bench/train_step.py --profile`, ProGAN at 16x16 with
# 7 convolutions in G and 7 in D): per iteration 49 Conv2D (4 D and 2 G forwards, 7 in the
# double backward), 35 Conv2DBackpropFilter (2 + 2 in the D step's backward and the double
# backward, 1 in G's) and 36 Conv2DBackpropInput (7 per input-gradient pass; the two fromRGB
# input gradients nothing needs are pruned in the D step's backward and double backward).
# The input gradient of a network's first layer (latents, reals) is counted though nothing
# needs it: under 0.3% of the total at paper widths. Losses, the reals' cross-fade and the
# interpolation are a few FLOPs per image pixel and are left out.
FORWARD, BACKWARD, INPUT_GRADIENT, DOUBLE_BACKWARD = 1, 2, 1, 4

PENALTY_LOSSES = ("wgan_gp", "logistic_r1")  # D losses with a gradient penalty (GP, R1)
# Per trainable parameter and step: Adam (m, v, update: 3 + 4 + 4) and the EMA lerp (3, per
# weight of the generator, every resolution's).
ADAM_FLOPS_PER_PARAMETER = 11
EMA_FLOPS_PER_PARAMETER = 3


def iteration_parts(loss="wgan_gp"):
    """[(part, network "G" or "D", multiplier of that network's forward FLOPs per batch)] of one
    iteration as `training.steps` runs it: the D step, then the G step (see the multipliers
    above). The D step draws fakes outside its gradient tape (no G backward); a penalty loss
    (WGAN-GP on interpolates, R1 on the reals) runs D once more, as `losses.critic_gradients`
    does."""
    parts = [("D step: G forward (fakes)", "G", FORWARD),
             ("D step: D forward (reals, fakes)", "D", 2 * FORWARD),
             ("D step: D backward (reals, fakes)", "D", 2 * BACKWARD)]
    if loss in PENALTY_LOSSES:
        parts += [("D step: penalty D forward", "D", FORWARD),
                  ("D step: penalty gradient w.r.t. the images", "D", INPUT_GRADIENT),
                  ("D step: penalty double backward", "D", DOUBLE_BACKWARD)]
    return parts + [("G step: G forward", "G", FORWARD),
                    ("G step: D forward", "D", FORWARD),
                    ("G step: D backward (input gradients only)", "D", INPUT_GRADIENT),
                    ("G step: G backward", "G", BACKWARD)]


class IterationFlops(NamedTuple):
    """FLOPs of one training iteration (global batch `batch`). `parts`: [(part, ForwardFlops)]
    per batch, the last one "optimizers and EMA"; `generator`, `discriminator`: forward
    ForwardFlops per sample; `multipliers`: iteration_parts()."""

    resolution: int
    batch: int
    generator: ForwardFlops
    discriminator: ForwardFlops
    multipliers: list
    parts: list

    @property
    def weights(self):
        return sum(flops.weights for _, flops in self.parts)

    @property
    def elementwise(self):
        return sum(flops.elementwise for _, flops in self.parts)

    @property
    def total(self):
        return self.weights + self.elementwise


def _active_parameters(network, res):
    """Trainable parameters the optimizer updates at `res`: blocks <= res, the image layers of
    res and res/2 (fade-in), the mapping network."""
    active = [network.block_at(r) for r in network.resolutions if r <= res]
    active += [network.image_layer_at(r) for r in {res, max(res // 2, 4)}]
    if hasattr(network, "mapping"):
        active.append(network.mapping)
    return sum(count_params(layer) for layer in active)


def iteration_flops(generator, discriminator, res, batch, loss="wgan_gp", style_mixing=False):
    """IterationFlops of one iteration at `res` during fade-in with global batch `batch`:
    `iteration_parts(loss)` applied to the forward FLOPs of G and D, plus Adam on both networks'
    active weights and the generator EMA (elementwise)."""
    per_sample = {"G": forward_flops(generator, res, style_mixing),
                  "D": forward_flops(discriminator, res)}
    multipliers = iteration_parts(loss)
    parts = [(part, per_sample[net] * (factor * batch)) for part, net, factor in multipliers]
    update = (ADAM_FLOPS_PER_PARAMETER * (_active_parameters(generator, res)
                                          + _active_parameters(discriminator, res))
              + EMA_FLOPS_PER_PARAMETER * count_params(generator))
    parts.append(("optimizers and EMA", ForwardFlops(0, update)))
    return IterationFlops(res, batch, per_sample["G"], per_sample["D"], multipliers, parts)


def format_iteration_flops(flops):
    """The parts of an IterationFlops with their multipliers and GFLOP, as text."""
    factors = {part: f"{factor} x {net}" for part, net, factor in flops.multipliers}
    lines = [f"FLOPs of one iteration at {flops.resolution}x{flops.resolution}, batch "
             f"{flops.batch} (forward per sample: G {flops.generator.weights / 1e9:.4g} + "
             f"{flops.generator.elementwise / 1e9:.3g} elementwise, D "
             f"{flops.discriminator.weights / 1e9:.4g} + "
             f"{flops.discriminator.elementwise / 1e9:.3g} GFLOP)",
             f"  {'part':<44}{'forwards':>10}{'GFLOP conv/dense':>18}{'elementwise':>13}"]
    total = ForwardFlops(flops.weights, flops.elementwise)
    for part, part_flops in flops.parts + [("total", total)]:
        lines.append(f"  {part:<44}{factors.get(part, ''):>10}{part_flops.weights / 1e9:>18.4g}"
                     f"{part_flops.elementwise / 1e9:>13.4g}")
    return "\n".join(lines)
