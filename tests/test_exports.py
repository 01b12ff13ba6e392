"""SavedModel export (exports/): versioned layout, signatures, serving_meta.json, and use of the
result without our code (saved_model_cli, a fresh TensorFlow-only process, TF Serving requests)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import exports
from exports import __main__ as exports_cli
from progan_tf import serving as signatures
from progan_tf.networks import Discriminator, Generator
from training_common import tree_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REST_BODY = os.path.join(REPO, "exports", "requests", "predict_seeds.json")
TINY = dict(resolution=8, num_channels=3, fmap_base=32, fmap_max=16)  # latent_size nf(0) = 16
SUBPROCESS_TIMEOUT = 240
FLAGS = {"data": "datasets/tiny-*.tfrecords", "final_resolution": 8, "seed": 3}
METRICS = [{"metric": "swd", "kimg": 5.0, "value": 0.9, "time": 1.0},
           {"metric": "fid", "kimg": 5.0, "value": 80.0, "time": 2.0},
           {"metric": "swd", "kimg": 10.0, "value": 0.5, "time": 3.0}]


def expected_uint8(images):
    return np.clip(np.round(np.asarray(images) * 127.5 + 127.5), 0, 255).astype(np.uint8)


def latents(count, size=16, seed=0):
    return np.random.default_rng(seed).normal(size=(count, size)).astype(np.float32)


def run_quietly(command, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
                          env=env, **kwargs)


def signature_defs(version_dir):
    """The SignatureDefs TF Serving reads from saved_model.pb."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    return saved_model.meta_graphs[0].signature_def


def write_run(run_dir, generator, generator_ema, **config):
    """A run directory as the trainer leaves it; two checkpoints, the EMA weights differ."""
    discriminator = Discriminator(**{k: v for k, v in config.items() if k != "latent_size"})
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "network.json"), "w") as file:
        json.dump({"architecture": "progan", "generator": generator.get_config(),
                   "discriminator": discriminator.get_config()}, file)
    with open(os.path.join(run_dir, "flags.json"), "w") as file:
        json.dump(FLAGS, file)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as file:
        file.writelines(json.dumps(record) + "\n" for record in METRICS)
    state = tf.Module()
    state.images_seen = tf.Variable(12345, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(generator=generator, generator_ema=generator_ema,
                                     discriminator=discriminator, state=state)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), 3)
    first_weights = [w.numpy() for w in generator_ema.weights]
    manager.save()
    for weight in generator_ema.trainable_weights:
        weight.assign(weight * 0.9 + 0.05)
    state.images_seen.assign(20000)
    manager.save()
    return first_weights


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained-looking run exported once by the CLI into <run dir>/export/generator/1."""
    keras.utils.set_random_seed(0)
    run_dir = str(tmp_path_factory.mktemp("exports") / "00000-tiny")
    generator = Generator(**TINY)
    generator_ema = Generator(**TINY)
    first_weights = write_run(run_dir, generator, generator_ema, **TINY)
    assert exports_cli.main(["--checkpoint", run_dir]) == 0
    return {"dir": run_dir, "generator": generator, "generator_ema": generator_ema,
            "first_weights": first_weights,
            "version_dir": os.path.join(run_dir, "export", "generator", "1")}


@pytest.fixture(scope="module")
def loaded(run):
    return tf.saved_model.load(run["version_dir"])


def test_cli_exports_ema_generator_into_run_dir_with_serving_meta(run):
    model_dir = os.path.join(run["dir"], "export", "generator")
    assert sorted(os.listdir(model_dir)) == ["1"]  # the temporary directory is gone
    version_dir = run["version_dir"]
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version_dir, "variables"))
    with open(os.path.join(version_dir, "assets.extra", "serving_meta.json")) as file:
        meta = json.load(file)
    assert (meta["architecture"], meta["resolution"], meta["num_channels"]) == ("progan", 8, 3)
    assert (meta["latent_size"], meta["label_size"], meta["conditional"]) == (16, 0, False)
    assert meta["training_kimg"] == pytest.approx(20.0)  # state/images_seen of the latest ckpt
    assert meta["flags"] == FLAGS
    assert meta["metrics"] == {"swd": METRICS[2], "fid": METRICS[1]}  # last value per metric
    assert meta["network"] == "generator_ema"
    assert meta["source_checkpoint"] == "ckpt-2"
    assert meta["generator_config"]["resolution"] == 8
    assert set(meta["signatures"]) == {"serving_default", "generate_seeds"}
    assert meta["signatures"]["serving_default"]["inputs"] == {
        "latents": {"dtype": "float32", "shape": [-1, 16]}}
    assert meta["signatures"]["generate_seeds"]["outputs"]["images"] == {
        "dtype": "uint8", "shape": [-1, 8, 8, 3]}
    assert "philox" in meta["seed_rule"]


def test_signature_defs_have_named_inputs_and_outputs(run):
    defs = signature_defs(run["version_dir"])
    default, seeds = defs["serving_default"], defs["generate_seeds"]
    assert set(default.inputs) == {"latents"}
    assert default.inputs["latents"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in default.inputs["latents"].tensor_shape.dim] == [-1, 16]
    assert set(default.outputs) == {"images", "images_float"}
    assert default.outputs["images"].dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in default.outputs["images"].tensor_shape.dim] == [-1, 8, 8, 3]
    assert default.outputs["images_float"].dtype == tf.float32.as_datatype_enum
    assert set(seeds.inputs) == {"seeds"}
    assert seeds.inputs["seeds"].dtype == tf.int64.as_datatype_enum
    assert set(seeds.outputs) == {"images", "images_float", "latents"}
    assert default.method_name == "tensorflow/serving/predict"


def test_saved_model_cli_show_lists_signatures(run):
    result = run_quietly(["saved_model_cli", "show", "--dir", run["version_dir"], "--all"])
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['generate_seeds']",
                 "inputs['latents']", "inputs['seeds']", "outputs['images']",
                 "outputs['images_float']", "DT_UINT8", "DT_INT64"):
        assert text in result.stdout


def test_saved_model_cli_run_returns_the_keras_models_images(run, tmp_path):
    z = latents(3)
    np.save(tmp_path / "z.npy", z)
    result = run_quietly(["saved_model_cli", "run", "--dir", run["version_dir"], "--tag_set",
                          "serve", "--signature_def", "serving_default", "--inputs",
                          f"latents={tmp_path / 'z.npy'}", "--outdir", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr[-2000:]
    images = np.load(tmp_path / "out" / "images.npy", allow_pickle=False)
    images_float = np.load(tmp_path / "out" / "images_float.npy", allow_pickle=False)
    assert images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
    keras_images = run["generator_ema"].model_for(8)(z).numpy()
    np.testing.assert_array_equal(images, expected_uint8(keras_images))
    np.testing.assert_allclose(images_float, np.clip(keras_images, -1, 1), atol=1e-6)


FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    version_dir, inputs_path, outputs_path = sys.argv[1:]
    inputs = np.load(inputs_path, allow_pickle=False)
    model = tf.saved_model.load(version_dir)
    default = model.signatures["serving_default"](latents=tf.constant(inputs["latents"]))
    seeds = model.signatures["generate_seeds"](seeds=tf.constant(inputs["seeds"]))
    leaked = [name for name in ("progan_tf", "exports") if name in sys.modules]
    assert not leaked, leaked
    np.savez(outputs_path, **{"default_" + k: v.numpy() for k, v in default.items()},
             **{"seeds_" + k: v.numpy() for k, v in seeds.items()})
""")


def test_fresh_tensorflow_only_process_gets_exactly_the_keras_images(run, tmp_path):
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    z = latents(4, seed=1)
    seeds = np.array([0, 7, 2**32 - 1], np.int64)
    np.savez(tmp_path / "in.npz", latents=z, seeds=seeds)
    result = run_quietly([sys.executable, str(script), run["version_dir"],
                          str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = np.load(tmp_path / "out.npz", allow_pickle=False)
    model = run["generator_ema"].model_for(8)
    keras_images = model(z).numpy()
    np.testing.assert_array_equal(out["default_images"], expected_uint8(keras_images))
    np.testing.assert_array_equal(out["default_images_float"], np.clip(keras_images, -1, 1))
    seed_latents = np.stack([tf.random.stateless_normal([16], seed=[int(s), 0], alg="philox")
                             for s in seeds])
    np.testing.assert_array_equal(out["seeds_latents"], seed_latents)
    np.testing.assert_array_equal(out["seeds_images"], expected_uint8(model(seed_latents)))


def test_training_run_export_renders_in_a_fresh_process_like_its_checkpoint(tmp_path):
    # train -> export (by the trainer) -> fresh TensorFlow-only process -> images, compared with
    # the EMA generator restored from the run's last checkpoint.
    import io

    from progan_tf import config
    from progan_tf.training import loop, sources

    reals = np.random.default_rng(0).uniform(-1, 1, size=(32, 8, 8, 3)).astype(np.float32)
    cfg = config.TrainConfig(
        data_dir="in-memory", results_dir=str(tmp_path / "results"), desc="roundtrip",
        total_kimg=0.048, lod_training_kimg=0.016, lod_transition_kimg=0.016, minibatch_base=8,
        minibatch_dict={}, tick_kimg_base=0.016, tick_kimg_dict={}, fmap_base=32, fmap_max=16,
        strategy="one_device", grid_size=(2, 2))
    result = loop.train(cfg, source=sources.InMemorySource(reals),
                        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
                        log_stream=io.StringIO())
    assert result.export_dir == os.path.join(result.run_dir, "export", "generator", "1")
    script = tmp_path / "load.py"
    script.write_text(FRESH_PROCESS)
    z = latents(3, seed=2)
    np.savez(tmp_path / "in.npz", latents=z, seeds=np.array([4, 5], np.int64))
    run_result = run_quietly([sys.executable, str(script), result.export_dir,
                              str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], cwd=tmp_path)
    assert run_result.returncode == 0, run_result.stderr[-2000:]
    out = np.load(tmp_path / "out.npz", allow_pickle=False)
    generator_ema, _ = exports.load_generator(result.run_dir)
    keras_images = generator_ema.model_for(8)(z).numpy()
    assert out["default_images"].shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(out["default_images"], expected_uint8(keras_images))
    with open(os.path.join(result.export_dir, "assets.extra", "serving_meta.json")) as file:
        meta = json.load(file)
    assert meta["training_kimg"] == pytest.approx(result.kimg)
    assert meta["flags"]["total_kimg"] == pytest.approx(0.048)


def test_generate_seeds_gives_a_seed_the_same_image_in_any_batch(loaded):
    generate_seeds = loaded.signatures["generate_seeds"]
    batch = generate_seeds(seeds=tf.constant([3, 7, 11, 4000000000], tf.int64))
    alone = generate_seeds(seeds=tf.constant([11], tf.int64))
    reordered = generate_seeds(seeds=tf.constant([11, 3], tf.int64))
    np.testing.assert_array_equal(batch["latents"][2:3], alone["latents"])
    np.testing.assert_array_equal(batch["latents"][2], reordered["latents"][0])
    np.testing.assert_array_equal(batch["latents"][0], reordered["latents"][1])
    np.testing.assert_allclose(batch["images_float"][2:3], alone["images_float"], atol=1e-5)
    np.testing.assert_allclose(batch["images_float"][0], reordered["images_float"][1], atol=1e-5)
    np.testing.assert_array_equal(batch["latents"], exports.seeds_to_latents([3, 7, 11, 4000000000], 16))
    again = generate_seeds(seeds=tf.constant([3, 7, 11, 4000000000], tf.int64))
    np.testing.assert_array_equal(batch["images"], again["images"])
    assert len({bytes(np.asarray(image)) for image in batch["images"]}) == 4


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_generate_seeds_rejects_seeds_outside_uint32(loaded, seed):
    with pytest.raises(tf.errors.InvalidArgumentError, match="seeds must be in 0..2\\^32-1"):
        loaded.signatures["generate_seeds"](seeds=tf.constant([0, seed], tf.int64))


def test_image_outputs_map_minus_one_to_zero_and_one_to_255():
    values = [-3.0, -1.0, -0.75, 0.0, 0.25, 0.5, 1.0, 2.0]  # exact in float32, as are x*127.5
    outputs = signatures.image_outputs(tf.constant(values)[None, None, :, None])
    # x*127.5+127.5 = -255, 0, 31.875, 127.5, 159.375, 191.25, 255, 382.5
    np.testing.assert_array_equal(outputs["images"].numpy().ravel(),
                                  [0, 0, 32, 128, 159, 191, 255, 255])
    np.testing.assert_array_equal(outputs["images_float"].numpy().ravel(),
                                  [-1.0, -1.0, -0.75, 0.0, 0.25, 0.5, 1.0, 1.0])
    assert outputs["images"].dtype == tf.uint8


def test_conditional_generator_takes_labels_in_both_signatures(tmp_path):
    generator = Generator(label_size=3, **TINY)
    version_dir = exports.export_generator(generator, tmp_path, meta={"training_kimg": 1.5})
    assert version_dir == os.path.join(tmp_path, "generator", "1")
    defs = signature_defs(version_dir)
    assert set(defs["serving_default"].inputs) == {"latents", "labels"}
    assert set(defs["generate_seeds"].inputs) == {"seeds", "labels"}
    assert [d.size for d in defs["generate_seeds"].inputs["labels"].tensor_shape.dim] == [-1, 3]
    model = tf.saved_model.load(version_dir)
    z, labels = latents(2), np.eye(3, dtype=np.float32)[[0, 2]]
    images = model.signatures["serving_default"](latents=z, labels=labels)["images_float"]
    np.testing.assert_array_equal(images, np.clip(generator.model_for(8)([z, labels]), -1, 1))
    by_seed = model.signatures["generate_seeds"](seeds=tf.constant([5, 5], tf.int64),
                                                 labels=labels)["images"].numpy()
    assert not np.array_equal(by_seed[0], by_seed[1])  # same seed, other label
    meta = json.load(open(os.path.join(version_dir, "assets.extra", "serving_meta.json")))
    assert (meta["label_size"], meta["conditional"], meta["training_kimg"]) == (3, True, 1.5)


def test_endpoint_table_takes_an_extra_per_example_input(tmp_path):
    # How StyleGAN adds truncation_psi to generate_seeds: one more spec, passed to render.
    generator = Generator(**TINY)
    model = generator.model_for(8)
    psi_spec = signatures.truncation_psi_spec()
    table = [
        signatures.latents_endpoint("serving_default", 16, 0, lambda z, labels: model(z)),
        signatures.seeds_endpoint(16, 0, lambda z, labels, truncation_psi: model(
            z * truncation_psi[:, None]), extra_inputs=(psi_spec,)),
    ]
    version_dir = exports.export_generator(generator, tmp_path, "styled", endpoints=table)
    assert set(signature_defs(version_dir)["generate_seeds"].inputs) == {"seeds",
                                                                         "truncation_psi"}
    outputs = tf.saved_model.load(version_dir).signatures["generate_seeds"](
        seeds=tf.constant([1, 1], tf.int64), truncation_psi=tf.constant([1.0, 0.0]))
    z = exports.seeds_to_latents([1, 1], 16)
    # The same graph in this process (an eager call may round differently from a graph).
    expected = tf.function(lambda z, psi: model(z * psi[:, None]))(z, tf.constant([1.0, 0.0]))
    np.testing.assert_array_equal(outputs["images_float"], np.clip(expected, -1, 1))
    np.testing.assert_array_equal(outputs["images_float"][1],
                                  np.clip(tf.function(model)(tf.zeros([2, 16]))[1], -1, 1))


def test_versions_increase_and_never_overwrite(tmp_path):
    generator = Generator(**TINY)
    first = exports.export_generator(generator, tmp_path)
    with open(os.path.join(first, "saved_model.pb"), "rb") as file:
        first_digest = hashlib.sha256(file.read()).hexdigest()
    second = exports.export_generator(generator, tmp_path)
    model_dir = os.path.join(tmp_path, "generator")
    os.mkdir(os.path.join(model_dir, "7"))  # taken, even though empty
    os.mkdir(os.path.join(model_dir, "latest"))  # not a version
    third = exports.export_generator(generator, tmp_path)
    assert [os.path.basename(p) for p in (first, second, third)] == ["1", "2", "8"]
    assert sorted(os.listdir(model_dir)) == ["1", "2", "7", "8", "latest"]
    assert os.listdir(os.path.join(model_dir, "7")) == []
    with open(os.path.join(first, "saved_model.pb"), "rb") as file:
        assert hashlib.sha256(file.read()).hexdigest() == first_digest
    assert exports.existing_versions(model_dir) == [1, 2, 7, 8]


def test_failed_export_leaves_no_version_and_no_temporary_directory(tmp_path):
    generator = Generator(**TINY)

    def broken(latents):
        raise RuntimeError("render failed")

    table = [signatures.Endpoint("serving_default", (signatures.latents_spec(16),), broken)]
    with pytest.raises(RuntimeError, match="render failed"):
        exports.export_generator(generator, tmp_path, endpoints=table)
    model_dir = os.path.join(tmp_path, "generator")
    assert not os.path.exists(model_dir) or os.listdir(model_dir) == []
    # A failure after the SavedModel is written (tuple keys are not JSON) removes it again.
    with pytest.raises(TypeError):
        exports.export_generator(generator, tmp_path, meta={"bad": {(1, 2): 3}})
    assert os.listdir(model_dir) == []


def test_raw_flag_and_checkpoint_prefix_select_the_network_and_step(run, tmp_path):
    prefix = os.path.join(run["dir"], "checkpoints", "ckpt-1")
    args = ["--checkpoint", prefix, "--out_dir", str(tmp_path), "--model_name", "faces"]
    assert exports_cli.main(args) == 0
    assert exports_cli.main(args + ["--raw"]) == 0
    z = latents(2, seed=3)
    ema_at_step_1 = Generator(**TINY)
    for weight, value in zip(ema_at_step_1.weights, run["first_weights"]):
        weight.assign(value)
    for version, reference in ((1, ema_at_step_1), (2, run["generator"])):
        model = tf.saved_model.load(os.path.join(tmp_path, "faces", str(version)))
        images = model.signatures["serving_default"](latents=z)["images_float"]
        np.testing.assert_array_equal(images, np.clip(reference.model_for(8)(z), -1, 1))
    meta = json.load(open(os.path.join(tmp_path, "faces", "2", "assets.extra",
                                       "serving_meta.json")))
    assert (meta["network"], meta["source_checkpoint"]) == ("generator", "ckpt-1")
    assert meta["training_kimg"] == pytest.approx(12.345)


@pytest.mark.parametrize("case", ["missing_run_dir", "missing_network_json", "no_checkpoint",
                                  "missing_prefix"])
def test_cli_reports_bad_checkpoint_paths_in_one_line(tmp_path, capsys, case):
    path = tmp_path / "run"
    if case != "missing_run_dir":
        path.mkdir()
    if case in ("no_checkpoint", "missing_prefix"):
        (path / "network.json").write_text(json.dumps(
            {"architecture": "progan", "generator": Generator(**TINY).get_config()}))
    if case == "missing_prefix":
        path = path / "checkpoints" / "ckpt-9"
    expected = {"missing_run_dir": "no such run directory or checkpoint prefix",
                "missing_network_json": "no network.json",
                "no_checkpoint": "no checkpoint found",
                "missing_prefix": "no such run directory or checkpoint prefix"}[case]
    assert exports_cli.main(["--checkpoint", str(path), "--out_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and str(path) in err
    assert not (tmp_path / "generator").exists()


def test_cli_rejects_a_checkpoint_without_the_requested_network(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    generator = Generator(**TINY)
    (run_dir / "network.json").write_text(json.dumps(
        {"architecture": "progan", "generator": generator.get_config()}))
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator),
                               str(run_dir / "checkpoints"), 1).save()
    assert exports_cli.main(["--checkpoint", str(run_dir)]) == 1  # no generator_ema in it
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'generator_ema'" in err
    assert exports_cli.main(["--checkpoint", str(run_dir), "--raw"]) == 0


def _rest_inputs(body, input_specs):
    """Tensors from a TF Serving REST body: row format ("instances") or columnar ("inputs")."""
    names = list(input_specs)
    if "instances" in body:
        rows = body["instances"]
        rows = [row if isinstance(row, dict) else {names[0]: row} for row in rows]
        columns = {name: [row[name] for row in rows] for name in rows[0]}
    else:
        columns = body["inputs"] if isinstance(body["inputs"], dict) else {names[0]: body["inputs"]}
    return {name: tf.constant(np.asarray(value), input_specs[name].dtype)
            for name, value in columns.items()}


def test_rest_request_body_file_runs_through_its_signature(loaded):
    with open(REST_BODY) as file:
        body = json.load(file)
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    inputs = _rest_inputs(body, specs)
    assert set(inputs) == set(specs)
    outputs = signature(**inputs)
    count = len(body["instances"])
    # The REST response in row format: one JSON object per instance.
    response = json.loads(json.dumps({"predictions": [
        {name: value[index].numpy().tolist() for name, value in outputs.items()}
        for index in range(count)]}))
    assert len(response["predictions"]) == count
    for prediction in response["predictions"]:
        assert np.asarray(prediction["images"]).shape == (8, 8, 3)
        assert 0 <= np.min(prediction["images"]) and np.max(prediction["images"]) <= 255
        assert np.asarray(prediction["latents"]).shape == (16,)


def test_predict_request_protos_match_the_signature_defs(run, loaded):
    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2",
        reason="tensorflow-serving-api is not installed "
               "(pip install --no-deps tensorflow-serving-api==2.21.0)")
    defs = signature_defs(run["version_dir"])
    feeds = {"serving_default": {"latents": latents(2)},
             "generate_seeds": {"seeds": np.array([0, 1, 2], np.int64)}}
    for name, feed in feeds.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "generator"
        request.model_spec.signature_name = name
        for key, value in feed.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
        signature_def = defs[name]
        assert set(request.inputs) == set(signature_def.inputs)
        for key, tensor in request.inputs.items():
            assert tensor.dtype == signature_def.inputs[key].dtype
            declared = [d.size for d in signature_def.inputs[key].tensor_shape.dim]
            received = [d.size for d in tensor.tensor_shape.dim]
            assert len(received) == len(declared)
            assert all(d in (-1, r) for d, r in zip(declared, received))
        outputs = loaded.signatures[name](**{key: tf.make_ndarray(tensor)
                                             for key, tensor in request.inputs.items()})
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
        assert set(response.outputs) == set(signature_def.outputs)
        images = tf.make_ndarray(response.outputs["images"])
        assert images.dtype == np.uint8 and images.shape == (len(next(iter(feed.values()))), 8, 8, 3)
        assert response.outputs["images"].dtype == signature_def.outputs["images"].dtype


# ---------------------------------------------------------------------------------------------
# A run directory whose newest checkpoint does not load: the export uses the one before and,
# being a reader, changes nothing in the run directory.


def _truncate(path):
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


def test_export_skips_a_corrupt_newest_checkpoint_and_leaves_the_run_directory_alone(
        run, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    shutil.copytree(run["dir"], run_dir)
    newest = os.path.join(run_dir, "checkpoints", "ckpt-2")
    _truncate(newest + ".data-00000-of-00001")
    before = tree_bytes(run_dir)
    out = tmp_path / "out"
    assert exports_cli.main(["--checkpoint", run_dir, "--out_dir", str(out)]) == 0
    assert capsys.readouterr().err == (
        f"warning: {newest}: skipped, it does not load (Read less bytes than requested (a "
        f"truncated file)); using ckpt-1\n")
    assert tree_bytes(run_dir) == before
    ema_at_step_1 = Generator(**TINY)
    for weight, value in zip(ema_at_step_1.weights, run["first_weights"]):
        weight.assign(value)
    z = latents(2, seed=4)
    model = tf.saved_model.load(str(out / "generator" / "1"))
    np.testing.assert_array_equal(model.signatures["serving_default"](latents=z)["images_float"],
                                  np.clip(ema_at_step_1.model_for(8)(z), -1, 1))
    meta = json.load(open(out / "generator" / "1" / "assets.extra" / "serving_meta.json"))
    assert (meta["source_checkpoint"], meta["training_kimg"]) == ("ckpt-1", pytest.approx(12.345))


def test_export_names_every_checkpoint_when_none_loads(run, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    shutil.copytree(run["dir"], run_dir)
    checkpoints = os.path.join(run_dir, "checkpoints")
    _truncate(os.path.join(checkpoints, "ckpt-2.data-00000-of-00001"))
    os.remove(os.path.join(checkpoints, "ckpt-1.index"))
    before = tree_bytes(run_dir)
    assert exports_cli.main(["--checkpoint", run_dir, "--out_dir", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"python -m exports: error: {checkpoints}: no checkpoint loads: ckpt-2 (Read less bytes "
        f"than requested (a truncated file)); ckpt-1 (its index file ckpt-1.index is missing)\n")
    # A corrupt checkpoint named by its prefix is not replaced by another one.
    assert exports_cli.main(["--checkpoint", os.path.join(checkpoints, "ckpt-2"), "--out_dir",
                             str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{os.path.join(checkpoints, 'ckpt-2')}: the checkpoint does not load (" in err
    assert tree_bytes(run_dir) == before and not (tmp_path / "out").exists()
