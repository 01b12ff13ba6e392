"""TrainConfig: one field per flag (name, help, default), presets from the registries, flags.json
as a flag set, and one clear message per bad value."""

import dataclasses

import pytest
from absl import flags

from progan_tf import architectures
from progan_tf import config
from progan_tf import losses
from progan_tf import schedule
from progan_tf import train

FIELDS = dataclasses.fields(config.TrainConfig)


def test_every_field_is_a_flag_with_the_same_name_help_and_default():
    for field in FIELDS:
        flag = flags.FLAGS[field.name]
        assert flag.help.endswith(field.metadata["help"]), field.name  # enums: "<a|b>: " first
        assert len(field.metadata["help"]) > 10, field.name
    defaults = {field.name: flags.FLAGS[field.name].default for field in FIELDS}
    cfg = config.TrainConfig.from_flag_values({**defaults, "data_dir": "datasets/x"})
    assert cfg == config.TrainConfig(data_dir="datasets/x")


def test_flag_kinds_follow_the_field_types():
    kinds = {spec.name: spec.kind for spec in config.flag_specs()}
    assert [spec.name for spec in config.flag_specs()] == [field.name for field in FIELDS]
    assert (kinds["total_kimg"], kinds["resolution"], kinds["mirror_augment"]) == (
        "float", "integer", "boolean")
    assert (kinds["desc"], kinds["minibatch_dict"], kinds["grid_size"]) == (
        "string", "string", "string")
    assert (kinds["architecture"], kinds["schedule"], kinds["metrics"]) == ("enum", "enum", "list")
    choices = {spec.name: spec.choices for spec in config.flag_specs()}
    assert choices["architecture"] == architectures.NAMES
    assert choices["schedule"] == schedule.SCHEDULES
    assert choices["loss"] == tuple(losses.LOSSES)


def test_json_dict_holds_flag_values_that_rebuild_the_config():
    cfg = config.TrainConfig(data_dir="datasets/x", grid_size=(3, 2), metrics=("swd", "fid"),
                             tick_kimg_dict={4: 10.0, 8: 2.5}, schedule="rosinality")
    as_json = cfg.to_json_dict()
    assert list(as_json) == [field.name for field in FIELDS]
    assert as_json["grid_size"] == "3x2" and as_json["metrics"] == ["swd", "fid"]
    assert as_json["tick_kimg_dict"] == "4:10,8:2.5" and as_json["schedule"] == "rosinality"
    assert as_json["max_minibatch_per_replica_dict"] == "256:16,512:8,1024:4"
    rebuilt = config.TrainConfig.from_flag_values(as_json, given=set(as_json))
    assert rebuilt == cfg


def test_presets_come_from_the_architecture_and_schedule_registries():
    assert config.preset_defaults("progan") == {}
    stylegan = config.preset_defaults("stylegan")
    assert stylegan == dict(architectures.get("stylegan").presets)
    assert stylegan["lrate_dict"] == schedule.STYLEGAN_LRATE_DICT
    both = config.preset_defaults("stylegan", "rosinality")
    assert both == {**stylegan, **schedule.PRESETS["rosinality"]}
    assert both["loss"] == "wgan_gp"  # the schedule's presets win
    both["minibatch_dict"][4] = 1  # a copy: the registry keeps its table
    assert schedule.PRESETS["rosinality"]["minibatch_dict"][4] == 512


def test_presets_apply_only_to_flags_not_given():
    values = {"data_dir": "datasets/x", "architecture": "stylegan", "loss": "wgan_gp",
              "lrate_dict": "1024:0.0015"}
    cfg = config.TrainConfig.from_flag_values(values, given={"data_dir", "architecture", "loss"})
    assert cfg.loss == "wgan_gp"  # given: kept
    assert (cfg.ema_kimg, cfg.lod_initial_resolution, cfg.total_kimg) == (10.0, 8, 25000)
    assert dict(cfg.lrate_dict) == schedule.STYLEGAN_LRATE_DICT
    ros = config.TrainConfig.from_flag_values({"data_dir": "x", "schedule": "rosinality"},
                                              given={"data_dir", "schedule"})
    assert dict(ros.minibatch_dict) == schedule.ROSINALITY_MINIBATCH_DICT
    assert ros.lod_training_kimg == ros.lod_transition_kimg == 600
    assert not ros.reset_optimizer_on_lod_change
    # Built in Python, a config takes no presets.
    assert config.TrainConfig(data_dir="x", architecture="stylegan").loss == "wgan_gp"


def test_architecture_help_lists_the_registry_presets():
    assert "--ema_kimg=10 --lod_initial_resolution=8 --total_kimg=25000" in (
        flags.FLAGS["architecture"].help)
    assert "--lrate_dict=128:0.0015,256:0.002,512:0.003,1024:0.003" in (
        flags.FLAGS["architecture"].help)


def test_build_schedule_uses_the_schedule_and_the_per_replica_caps():
    cfg = config.TrainConfig(data_dir="x", schedule="rosinality", minibatch_base=32,
                             minibatch_dict={}, max_minibatch_per_replica_dict={64: 4})
    sched = cfg.build_schedule(64, num_replicas=2)
    assert isinstance(sched, schedule.RosinalitySchedule)
    assert sched.minibatch_at(32) == 32 and sched.minibatch_at(64) == 8
    assert type(config.TrainConfig(data_dir="x").build_schedule(64)) is schedule.Schedule


@pytest.mark.parametrize("changes, message", [
    (dict(architecture="stylegan2"), r"^--architecture: must be one of progan, stylegan, got "
                                     r"'stylegan2'$"),
    (dict(schedule="linear"), r"^--schedule: must be one of progan, rosinality, got 'linear'$"),
    (dict(style_mixing_prob=1.5), r"^--style_mixing_prob: must be in \[0, 1\], got 1\.5$"),
    (dict(mapping_fmaps=0), r"^--mapping_fmaps: must be >= 1, got 0$"),
    (dict(fmap_max=0), r"^--fmap_base/--fmap_max: must be >= 1, got 8192/0$"),
    (dict(metrics_num=1), r"^--metrics_num: must be 0 \(each metric's default\) or >= 2, got 1$"),
    (dict(grid_size=(0, 2)), r"^--grid_size: expected WIDTHxHEIGHT with both >= 1, got \(0, 2\)$"),
    (dict(export_model_name="a/b"), r"^--export_model_name: must be a plain directory name"),
    (dict(mbstd_grouping="random"), r"^--mbstd_grouping: must be one of consecutive, strided"),
    (dict(steps_per_call=-1), r"^--steps_per_call: must be >= 0, got -1$"),
    (dict(steps_per_call=3), r"^--steps_per_call: 3 does not divide --minibatch_repeats 4 "),
])
def test_bad_values_name_the_flag(changes, message):
    with pytest.raises(config.ConfigError, match=message):
        config.TrainConfig(data_dir="x", **changes)


def test_optional_values_may_be_none_but_not_invalid():
    cfg = config.TrainConfig(data_dir="x", resolution=None, latent_size=None, grid_size=None)
    assert cfg.resolution is None and cfg.grid_size is None
    with pytest.raises(config.ConfigError, match=r"^--latent_size: must be >= 1, got 0$"):
        cfg.replace(latent_size=0)


def test_precision_is_an_enum_and_mixed_precision_its_float16_alias():
    assert flags.FLAGS["precision"].default == "float32"
    assert {spec.name: spec.choices for spec in config.flag_specs()}["precision"] == (
        "float32", "bfloat16", "float16")
    alias = config.TrainConfig(data_dir="x", mixed_precision=True)
    assert alias.precision == "float16" and not alias.mixed_precision  # one source of truth
    assert alias == config.TrainConfig(data_dir="x", precision="float16")
    assert alias.replace(precision="bfloat16").precision == "bfloat16"
    as_json = alias.to_json_dict()
    assert (as_json["precision"], as_json["mixed_precision"]) == ("float16", False)
    assert config.TrainConfig.from_flag_values(as_json, given=set(as_json)) == alias
    # flags.json of a run made before --precision existed: mixed_precision, no precision.
    old = {"data_dir": "x", "mixed_precision": True}
    assert config.TrainConfig.from_flag_values(old, given=set(old)).precision == "float16"
    given = {"data_dir": "x", "mixed_precision": True, "precision": "float16"}
    assert config.TrainConfig.from_flag_values(given, given=set(given)).precision == "float16"


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_mixed_precision_with_another_precision_is_one_error_naming_both(precision):
    message = (rf"^--mixed_precision and --precision={precision} conflict: --mixed_precision is "
               rf"an alias of --precision=float16; give only one of them$")
    values = {"data_dir": "x", "mixed_precision": True, "precision": precision}
    with pytest.raises(config.ConfigError, match=message):
        config.TrainConfig.from_flag_values(values, given=set(values))
    if precision == "bfloat16":  # built in code, float32 is also the default: not a conflict
        with pytest.raises(config.ConfigError, match=message):
            config.TrainConfig(data_dir="x", mixed_precision=True, precision=precision)
    with pytest.raises(config.ConfigError, match=r"^--precision: must be one of float32, "
                                                 r"bfloat16, float16, got 'half'$"):
        config.TrainConfig(data_dir="x", precision="half")
