"""Inception-v3 pool3 features of the 2015-12-05 FID graph (SPEC 5), [N, H, W, C] uint8 ->
[N, 2048] float32, in TensorFlow from the converted offline weights (`weights.py`).

Every convolution is pad -> VALID conv (no bias) -> batch norm (beta, mean, var; eps 1e-3) ->
ReLU. Blocks: A x3, B, C x4, D, E x2; branch average pools exclude the padding, and `mixed_10`
pools its last branch with a 3x3 max pool (a quirk of the FID graph).
"""

import numpy as np
import tensorflow as tf

from progan_tf.metrics import weights as weights_lib

INPUT_SIZE = 299
FEATURE_SIZE = 2048
_BN_EPSILON = 1e-3


def preprocess(images):
    """uint8 (or float 0..255) [N, H, W, C], C in {1, 3} -> float32 [N, 299, 299, 3] in [-1, 1).

    Legacy bilinear resize (`ResizeBilinear`, align_corners=False, half_pixel_centers=False), as
    the FID graph does it, then x / 128 - 1; grayscale is tiled to three channels.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be [N, H, W, 1 or 3], got shape {images.shape}")
    images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1:
        images = tf.tile(images, [1, 1, 1, 3])
    images = tf.raw_ops.ResizeBilinear(images=images, size=[INPUT_SIZE, INPUT_SIZE],
                                       align_corners=False, half_pixel_centers=False)
    return images / 128.0 - 1.0


class InceptionV3Features(tf.Module):
    """pool3 features of the FID Inception-v3.

    Args:
        arrays: {name: array} as written by `weights.convert_inception`; None loads the cached
            `inception_v3_fid.npz` (raises weights.WeightsError when it was never fetched).
        batch_size: images per forward pass in `__call__`.

    Call arguments:
        images: [N, H, W, C] uint8 (C = 1 or 3), any H, W.

    Returns:
        float32 numpy array [N, 2048].
    """

    def __init__(self, arrays=None, batch_size=32, name="inception_v3_fid"):
        super().__init__(name=name)
        arrays = weights_lib.load_weights(weights_lib.INCEPTION) if arrays is None else arrays
        self.batch_size = batch_size
        self._convs = {}
        with self.name_scope:
            for key in sorted(arrays):
                if not key.endswith(".weight"):
                    continue
                path = key[: -len(".weight")]
                scale = 1.0 / np.sqrt(arrays[path + ".var"].astype(np.float64) + _BN_EPSILON)
                self._convs[path] = dict(
                    kernel=tf.constant(arrays[key], tf.float32),
                    scale=tf.constant(scale.astype(np.float32)),
                    mean=tf.constant(arrays[path + ".mean"], tf.float32),
                    beta=tf.constant(arrays[path + ".beta"], tf.float32),
                    stride=int(arrays[path + ".stride"]),
                    padding=[int(p) for p in arrays[path + ".padding"]],
                )
        self._features = tf.function(
            self.features_from_preprocessed,
            input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)])

    # ---- building blocks ----------------------------------------------------------------------

    def _conv(self, path, x):
        conv = self._convs[path]
        pad_h, pad_w = conv["padding"]
        if pad_h or pad_w:
            x = tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
        x = tf.nn.conv2d(x, conv["kernel"], strides=conv["stride"], padding="VALID")
        x = (x - conv["mean"]) * conv["scale"] + conv["beta"]
        return tf.nn.relu(x)

    def _tower(self, path, x, num_convs):
        for i in range(num_convs):
            x = self._conv(f"{path}.conv" + (f"_{i}" if i else ""), x)
        return x

    @staticmethod
    def _avg_pool_3x3(x):
        # SAME average pooling counts only the valid inputs (torch: count_include_pad=False).
        return tf.nn.avg_pool2d(x, 3, strides=1, padding="SAME")

    @staticmethod
    def _max_pool_3x3_stride_2(x):
        return tf.nn.max_pool2d(x, 3, strides=2, padding="VALID")

    def _block_a(self, path, x):
        return tf.concat([
            self._conv(f"{path}.conv", x),
            self._tower(f"{path}.tower", x, 2),
            self._tower(f"{path}.tower_1", x, 3),
            self._conv(f"{path}.tower_2.conv", self._avg_pool_3x3(x)),
        ], axis=-1)

    def _block_b(self, path, x):
        return tf.concat([
            self._conv(f"{path}.conv", x),
            self._tower(f"{path}.tower", x, 3),
            self._max_pool_3x3_stride_2(x),
        ], axis=-1)

    def _block_c(self, path, x):
        return tf.concat([
            self._conv(f"{path}.conv", x),
            self._tower(f"{path}.tower", x, 3),
            self._tower(f"{path}.tower_1", x, 5),
            self._conv(f"{path}.tower_2.conv", self._avg_pool_3x3(x)),
        ], axis=-1)

    def _block_d(self, path, x):
        return tf.concat([
            self._tower(f"{path}.tower", x, 2),
            self._tower(f"{path}.tower_1", x, 4),
            self._max_pool_3x3_stride_2(x),
        ], axis=-1)

    def _block_e(self, path, x, max_pool):
        a = self._conv(f"{path}.tower_conv", x)
        b = self._conv(f"{path}.tower_1_conv_1", self._conv(f"{path}.tower_1_conv", x))
        if max_pool:  # mixed_10 of the FID graph
            pooled = tf.nn.max_pool2d(x, 3, strides=1, padding="SAME")
        else:
            pooled = self._avg_pool_3x3(x)
        return tf.concat([
            self._conv(f"{path}.conv", x),
            self._conv(f"{path}.tower_mixed_conv", a),
            self._conv(f"{path}.tower_mixed_conv_1", a),
            self._conv(f"{path}.tower_1_mixed_conv", b),
            self._conv(f"{path}.tower_1_mixed_conv_1", b),
            self._conv(f"{path}.tower_2_conv", pooled),
        ], axis=-1)

    # ---- forward ------------------------------------------------------------------------------

    def features_from_preprocessed(self, x):
        """[N, 299, 299, 3] float32 in [-1, 1] -> [N, 2048] pool3 features."""
        x = self._conv("layers.conv", x)  # 149x149x32
        x = self._conv("layers.conv_1", x)  # 147x147x32
        x = self._conv("layers.conv_2", x)  # 147x147x64
        x = self._max_pool_3x3_stride_2(x)  # 73x73x64
        x = self._conv("layers.conv_3", x)  # 73x73x80
        x = self._conv("layers.conv_4", x)  # 71x71x192
        x = self._max_pool_3x3_stride_2(x)  # 35x35x192
        x = self._block_a("layers.mixed", x)  # 35x35x256
        x = self._block_a("layers.mixed_1", x)  # 35x35x288
        x = self._block_a("layers.mixed_2", x)  # 35x35x288
        x = self._block_b("layers.mixed_3", x)  # 17x17x768
        for i in range(4, 8):
            x = self._block_c(f"layers.mixed_{i}", x)  # 17x17x768
        x = self._block_d("layers.mixed_8", x)  # 8x8x1280
        x = self._block_e("layers.mixed_9", x, max_pool=False)  # 8x8x2048
        x = self._block_e("layers.mixed_10", x, max_pool=True)  # 8x8x2048
        return tf.reduce_mean(x, axis=[1, 2])  # pool3: 8x8 average pool

    def features(self, images):
        """One batch: [n, H, W, C] uint8 -> [n, 2048] tensor."""
        return self._features(preprocess(images))

    def __call__(self, images):
        images = np.asarray(images)
        outputs = [self.features(images[i:i + self.batch_size]).numpy()
                   for i in range(0, len(images), self.batch_size)]
        if not outputs:
            return np.zeros([0, FEATURE_SIZE], np.float32)
        return np.concatenate(outputs, axis=0)
