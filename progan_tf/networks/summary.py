"""Per-layer tables and parameter counts of the networks (SPEC 1.1 counting)."""

from progan_tf.networks.base import count_params


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
