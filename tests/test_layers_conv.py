"""Tests for progan_tf.layers.conv: the GEMM-gradient convolution against NumPy and against
TensorFlow's own gradients (first and second order), the kernels it leaves out of the graph,
its banded weight gradient, and --conv_gradients' resolution; the fused resampling convolutions
against upsampling / pooling and a 3x3 convolution (values, first and second order gradients)."""

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import layers
from progan_tf.layers import conv
from test_layers import numpy_conv_same


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy_kernel_gradient(x, dy, k):
    """dL/dW[i, j] = sum over n, h, w of padded x[n, h + i, w + j, :] outer dy[n, h, w, :]."""
    pad = k // 2
    _, h, w, _ = x.shape
    padded = np.pad(x.astype("float64"), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return np.stack([np.stack([np.einsum("nhwc,nhwd->cd", padded[:, i:i + h, j:j + w], dy)
                               for j in range(k)]) for i in range(k)])


def numpy_input_gradient(dy, kernel):
    """dL/dx[n, p, q, c] = sum over i, j, d of dy[n, p - i + pad, q - j + pad, d] W[i, j, c, d]."""
    k = kernel.shape[0]
    pad = k // 2
    n, h, w, _ = dy.shape
    padded = np.pad(dy.astype("float64"), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[2]))
    for i in range(k):
        for j in range(k):
            shifted = padded[:, 2 * pad - i:2 * pad - i + h, 2 * pad - j:2 * pad - j + w]
            out += np.einsum("nhwd,cd->nhwc", shifted, kernel[i, j])
    return out


def first_gradients(x, kernel, dy, gemm):
    with conv.gemm_gradients(1 if gemm else None):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv.same_conv(x, kernel)
        return y, *tape.gradient(y, [x, kernel], output_gradients=dy)


@pytest.fixture(params=["shifted products", "im2col", "shifted products in bands",
                        "im2col in bands"])
def weight_gradient_path(request, monkeypatch):
    """The ways of the weight gradient: k*k products or one im2col product, over all rows at
    once or in bands (of the 6 rows: 3 bands of 2 at k=3, a band per row at k=5)."""
    if "im2col" in request.param:
        monkeypatch.setattr(conv, "SHIFTED_MAX_CHANNELS", 0)
    if "bands" in request.param:
        monkeypatch.setattr(conv, "IM2COL_BYTES", 2 * 7 * 9 * 4 * 4 * 2)
    return request.param


@pytest.mark.parametrize("k", [1, 3, 5])
def test_gemm_gradients_match_numpy_and_tensorflow(k, weight_gradient_path):
    x, dy = tf.constant(normal(2, 6, 7, 4, seed=1)), tf.constant(normal(2, 6, 7, 5, seed=2))
    kernel = tf.constant(normal(k, k, 4, 5, seed=3))
    y, dx, dw = first_gradients(x, kernel, dy, gemm=True)
    y_tf, dx_tf, dw_tf = first_gradients(x, kernel, dy, gemm=False)
    np.testing.assert_array_equal(y.numpy(), y_tf.numpy())  # the forward op is the same
    np.testing.assert_allclose(dw.numpy(), numpy_kernel_gradient(x.numpy(), dy.numpy(), k),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx.numpy(), numpy_input_gradient(dy.numpy(), kernel.numpy()),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw.numpy(), dw_tf.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx.numpy(), dx_tf.numpy(), rtol=1e-5, atol=1e-5)


def test_rotated_kernel_is_the_input_gradients_kernel():
    kernel = normal(3, 3, 2, 4)
    rotated = conv.rotate_kernel(kernel).numpy()
    assert rotated.shape == (3, 3, 4, 2)
    for i in range(3):
        for j in range(3):
            np.testing.assert_array_equal(rotated[i, j], kernel[2 - i, 2 - j].T)


def test_kernel_gradient_in_bands_of_rows_equals_one_product_and_shifted_products(monkeypatch):
    x, dy = tf.constant(normal(3, 9, 5, 4, seed=4)), tf.constant(normal(3, 9, 5, 6, seed=5))
    shifted = conv.kernel_gradient(x, dy, (3, 3, 4, 6)).numpy()
    monkeypatch.setattr(conv, "SHIFTED_MAX_CHANNELS", 0)
    monkeypatch.setattr(conv, "IM2COL_BYTES", 2**30)
    whole = conv.kernel_gradient(x, dy, (3, 3, 4, 6)).numpy()
    np.testing.assert_allclose(whole, shifted, rtol=1e-5, atol=1e-5)
    row_bytes = 3 * 5 * 9 * 4 * 4
    monkeypatch.setattr(conv, "IM2COL_BYTES", 2 * row_bytes)  # bands of 2 rows: 2+2+2+2+1
    banded = conv.kernel_gradient(x, dy, (3, 3, 4, 6)).numpy()
    np.testing.assert_allclose(banded, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(banded, numpy_kernel_gradient(x.numpy(), dy.numpy(), 3),
                               rtol=1e-4, atol=1e-4)


def penalty_and_gradients(gemm, min_channels=1):
    """A two-layer critic's WGAN-GP-like loss and its weight gradients (the penalty's second
    backward pass runs through the convolutions' gradients), in one tf.function."""
    x = tf.constant(normal(4, 8, 8, 3, seed=6))
    w1 = tf.Variable(normal(3, 3, 3, 6, seed=7) * 0.3)
    w2 = tf.Variable(normal(3, 3, 6, 2, seed=8) * 0.3)

    @tf.function
    def run():
        with conv.gemm_gradients(min_channels if gemm else None):
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    y = conv.same_conv(layers.lrelu(conv.same_conv(x, w1)), w2)
                    score = tf.reduce_sum(y * tf.cos(y))
                norm = tf.sqrt(tf.reduce_sum(tf.square(inner.gradient(score, x))) + 1e-8)
                loss = score + 10.0 * tf.square(norm - 1.0)
            return loss, outer.gradient(loss, [w1, w2])

    return run


def test_second_order_gradients_equal_tensorflows_own(weight_gradient_path):
    loss, grads = penalty_and_gradients(gemm=True)()
    loss_tf, grads_tf = penalty_and_gradients(gemm=False)()
    np.testing.assert_allclose(loss.numpy(), loss_tf.numpy(), rtol=1e-5)
    for grad, grad_tf in zip(grads, grads_tf):
        scale = np.abs(grad_tf.numpy()).max()
        np.testing.assert_allclose(grad.numpy() / scale, grad_tf.numpy() / scale, atol=1e-5)


def op_types(gemm, min_channels=1):
    graph = penalty_and_gradients(gemm, min_channels).get_concrete_function().graph
    types = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_gemm_mode_leaves_no_backprop_kernel_in_the_graph_and_native_mode_does():
    gemm, native = op_types(gemm=True), op_types(gemm=False)
    assert "Conv2D" in gemm and "MatMul" in gemm
    assert not {"Conv2DBackpropFilter", "Conv2DBackpropInput"} & gemm
    assert {"Conv2DBackpropFilter", "Conv2DBackpropInput"} <= native


def test_convolutions_narrower_than_min_channels_keep_tensorflows_gradients():
    # w1 is 3 -> 6 channels, w2 6 -> 2: with 3, w2 keeps TensorFlow's gradients
    assert {"Conv2DBackpropFilter", "Conv2DBackpropInput"} <= op_types(True, min_channels=3)
    assert not {"Conv2DBackpropFilter", "Conv2DBackpropInput"} & op_types(True, min_channels=2)


def test_the_mode_holds_only_inside_the_context():
    assert conv._gemm.get() is None
    with conv.gemm_gradients():
        assert conv._gemm.get() == 1
        with conv.gemm_gradients(None):
            assert conv._gemm.get() is None
        assert conv._gemm.get() == 1
    assert conv._gemm.get() is None


def test_equalized_layers_use_it_in_float16_too():
    layer = layers.WeightScaledConv2D(4, kernel_size=3, dtype="mixed_float16")
    x = tf.constant(normal(2, 5, 5, 3, seed=9))
    results = []
    for gemm in (True, False):
        with conv.gemm_gradients(1 if gemm else None), tf.GradientTape() as tape:
            y = tf.cast(layer(x), tf.float32)
            loss = tf.reduce_sum(y * y)
        results.append(tape.gradient(loss, layer.kernel))
    assert results[0].dtype == tf.float32  # the float32 master kernel's gradient
    np.testing.assert_allclose(results[0].numpy(), results[1].numpy(), rtol=1e-2, atol=1e-2)


def test_auto_is_gemm_for_wide_convolutions_on_cpus_only_and_bad_modes_name_the_flag():
    cpus = ["/job:localhost/replica:0/task:0/device:CPU:0", "/device:CPU:1"]
    gpu = "/job:localhost/replica:0/task:0/device:GPU:0"
    assert conv.gemm_min_channels("auto", cpus) == conv.GEMM_MIN_CHANNELS == 128
    assert conv.gemm_min_channels("auto", cpus[:1] + [gpu]) is None
    assert conv.gemm_min_channels("native", cpus) is None
    assert conv.gemm_min_channels("gemm", [gpu]) == 1
    with pytest.raises(ValueError, match="--conv_gradients"):
        conv.gemm_min_channels("fast", cpus)


# --- resampling convolutions as one strided convolution -----------------------------------------


def numpy_pool(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def separate_up(x, kernel):
    return conv.same_conv(layers.upsample2d(x), kernel)


def separate_down(x, kernel):
    return layers.downsample2d(conv.same_conv(x, kernel))


@pytest.mark.parametrize("fused, separate", [(conv.upsample_conv, separate_up),
                                             (conv.conv_downsample, separate_down)])
def test_resampling_convs_equal_the_separate_ops_with_their_gradients_to_second_order(
        fused, separate):
    x = tf.constant(normal(2, 6, 4, 3, seed=10))  # not square: rows and columns kept apart
    kernel = tf.constant(normal(3, 3, 3, 5, seed=11))
    if fused is conv.upsample_conv:
        expected = numpy_conv_same(x.numpy().repeat(2, 1).repeat(2, 2), kernel.numpy())
    else:
        expected = numpy_pool(numpy_conv_same(x.numpy(), kernel.numpy()))
    np.testing.assert_allclose(fused(x, kernel).numpy(), expected, rtol=1e-5, atol=1e-5)

    def penalised(op):
        with tf.GradientTape() as outer:
            outer.watch(kernel)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = op(x, kernel)
                score = tf.reduce_sum(y * tf.cos(y))
            dx = inner.gradient(score, x)
            loss = score + tf.reduce_sum(tf.square(dx))
        return dx, outer.gradient(loss, kernel)

    for got, want in zip(penalised(fused), penalised(separate)):
        scale = np.abs(want.numpy()).max()
        np.testing.assert_allclose(got.numpy() / scale, want.numpy() / scale, atol=1e-5)


def test_fused_kernels_are_the_sums_of_the_shifted_kernels():
    kernel = normal(3, 3, 1, 1)[:, :, 0, 0]
    down = conv.fused_down_kernel(kernel[:, :, None, None]).numpy()[:, :, 0, 0]
    padded = np.pad(kernel, 1)
    np.testing.assert_allclose(
        down, (padded[1:, 1:] + padded[:-1, 1:] + padded[1:, :-1] + padded[:-1, :-1]) / 4,
        rtol=1e-6)
    up = conv.fused_up_kernel(kernel[:, :, None, None]).numpy()[:, :, 0, 0]
    rotated = np.pad(kernel[::-1, ::-1], 1)
    np.testing.assert_allclose(
        up, rotated[1:, 1:] + rotated[:-1, 1:] + rotated[1:, :-1] + rotated[:-1, :-1], rtol=1e-6)
