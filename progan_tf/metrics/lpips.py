"""LPIPS v0.1 with VGG16 (Zhang et al. 2018; the perceptual distance of StyleGAN's PPL):
two [N, H, W, 3] float images in [-1, 1] -> [N] distances, from the offline weights (`weights.py`).

Forward (SPEC 5): (x - shift) / scale -> VGG16 `features`, taps after the ReLUs of convs 2, 4, 7,
10 and 13 -> per tap: unit-normalise over channels (eps 1e-10), squared difference, 1x1 linear
head (no bias), spatial mean -> sum over taps.
"""

import numpy as np
import tensorflow as tf

from progan_tf.metrics import weights as weights_lib

_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
# VGG16 `features`: output channels per conv, "M" = 2x2 max pool, stride 2.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAP_CONVS = (2, 4, 7, 10, 13)  # LPIPS reads the ReLU outputs of these convs (1-based)
MIN_SIZE = 16  # four max pools leave a 1x1 map at the last tap


class LPIPS(tf.Module):
    """LPIPS-VGG16 distance.

    Args:
        arrays: {name: array} as written by `weights.convert_lpips_vgg16`; None loads the cached
            `lpips_vgg16.npz` (raises weights.WeightsError when it was never fetched).

    Call arguments:
        images0, images1: [N, H, W, 3] float32 in [-1, 1], H and W >= 16.

    Returns:
        [N] float32 tensor of distances (0 for identical images; symmetric).
    """

    def __init__(self, arrays=None, name="lpips_vgg16"):
        super().__init__(name=name)
        arrays = weights_lib.load_weights(weights_lib.LPIPS_VGG16) if arrays is None else arrays
        with self.name_scope:
            self._kernels = [tf.constant(arrays[f"vgg.conv{i}.kernel"]) for i in range(1, 14)]
            self._biases = [tf.constant(arrays[f"vgg.conv{i}.bias"]) for i in range(1, 14)]
            self._heads = [tf.constant(arrays[f"lin{i}.kernel"]) for i in range(5)]
        self._distance = tf.function(self.distance, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32),
            tf.TensorSpec([None, None, None, 3], tf.float32)])

    def features(self, images):
        """[N, H, W, 3] in [-1, 1] -> list of the five tapped VGG16 activations [N, h, w, C]."""
        x = (images - _SHIFT) / _SCALE
        taps = []
        conv_index = 0
        for item in _VGG16_LAYOUT:
            if item == "M":
                x = tf.nn.max_pool2d(x, 2, strides=2, padding="VALID")
                continue
            x = tf.nn.conv2d(x, self._kernels[conv_index], strides=1, padding="SAME")
            x = tf.nn.relu(x + self._biases[conv_index])
            conv_index += 1
            if conv_index in _TAP_CONVS:
                taps.append(x)
        return taps

    def distance(self, images0, images1):
        """[N, H, W, 3] x2 -> [N]."""
        # Two batches of one shape, not one concatenated batch: a convolution's result can
        # depend on an image's position in the batch, and identical images must give exactly 0.
        total = 0.0
        for tap0, tap1, head in zip(self.features(images0), self.features(images1), self._heads):
            squared = tf.square(_unit(tap0) - _unit(tap1))
            total += tf.reduce_mean(tf.tensordot(squared, head, axes=[[3], [0]]), axis=[1, 2])
        return total

    def __call__(self, images0, images1):
        images0 = tf.convert_to_tensor(images0, tf.float32)
        images1 = tf.convert_to_tensor(images1, tf.float32)
        if images0.shape != images1.shape or images0.shape.rank != 4 or images0.shape[-1] != 3:
            raise ValueError("LPIPS needs two [N, H, W, 3] batches of equal shape, got "
                             f"{images0.shape} and {images1.shape}")
        if min(images0.shape[1], images0.shape[2]) < MIN_SIZE:
            raise ValueError(f"LPIPS-VGG16 needs images of at least {MIN_SIZE}x{MIN_SIZE}, got "
                             f"{images0.shape[1]}x{images0.shape[2]}")
        return self._distance(images0, images1)


def _unit(features):
    """Features [N, h, w, C] scaled to unit length along C."""
    return features / (tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True))
                       + 1e-10)
