"""Per-layer tables and parameter counts of the networks (SPEC 1.1 counting)."""

from progan_tf.networks.base import count_params


def parameters_up_to(network, res):
    """Trainable parameters of `network`'s model at `res`: blocks <= res and one
    toRGB/fromRGB per resolution <= res (SPEC 1.1 counting), plus a mapping network if any."""
    network._check_resolution(res)
    rgb = "to_rgb" if hasattr(network, "to_rgb_4x4") else "from_rgb"
    mapping = getattr(network, "mapping", None)
    return (count_params(mapping) if mapping is not None else 0) + sum(
        count_params(network._block("block", r)) + count_params(network._block(rgb, r))
        for r in network.resolutions if r <= res)


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
