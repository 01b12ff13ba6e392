"""Progressive schedule: lod, fade-in alpha, resolution, minibatch and learning rate by kimg."""

import math

import numpy as np
import pytest

from progan_tf import schedule


def original_training_schedule(kimg, resolution_log2, lod_initial_resolution=4,
                               lod_training_kimg=600, lod_transition_kimg=600):
    """[PG] train.py TrainingSchedule's lod and resolution, transcribed line by line."""
    phase_dur = lod_training_kimg + lod_transition_kimg
    phase_idx = int(np.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = resolution_log2
    lod -= np.floor(np.log2(lod_initial_resolution))
    lod -= phase_idx
    if lod_transition_kimg > 0:
        lod -= max(phase_kimg - lod_training_kimg, 0.0) / lod_transition_kimg
    lod = max(lod, 0.0)
    return lod, 2 ** (resolution_log2 - int(np.floor(lod)))


@pytest.mark.parametrize("initial, training, transition", [(4, 600, 600), (8, 600, 600),
                                                            (4, 800, 800), (4, 400, 400),
                                                            (4, 30, 60), (32, 600, 600)])
def test_lod_and_resolution_equal_the_originals_at_many_kimg(initial, training, transition):
    sched = schedule.Schedule(resolution=1024, initial_resolution=initial,
                              training_kimg=training, transition_kimg=transition)
    for kimg in np.linspace(0.0, 12000.0, 2401):
        lod, resolution = original_training_schedule(kimg, 10, initial, training, transition)
        phase = sched.at(float(kimg))
        assert phase.lod == pytest.approx(lod, abs=1e-12), kimg
        assert phase.resolution == resolution, kimg


def test_lod_alpha_resolution_at_given_kimg_for_1024_from_4():
    sched = schedule.Schedule(resolution=1024)
    expected = {  # kimg: (lod, resolution, fade_alpha)
        0: (8.0, 4, 1.0), 599: (8.0, 4, 1.0), 600: (8.0, 4, 1.0),
        750: (7.75, 8, 0.25),  # a quarter into the 8x8 fade: new layers weighted 0.25
        900: (7.5, 8, 0.5), 1200: (7.0, 8, 1.0), 1800: (7.0, 8, 1.0), 2100: (6.5, 16, 0.5),
        9000: (1.0, 512, 1.0), 9300: (0.5, 1024, 0.5), 9600: (0.0, 1024, 1.0), 15000: (0.0, 1024, 1.0)}
    for kimg, (lod, resolution, alpha) in expected.items():
        phase = sched.at(float(kimg))
        assert (phase.lod, phase.resolution) == (pytest.approx(lod), resolution), kimg
        assert phase.fade_alpha == pytest.approx(alpha), kimg
    assert sched.kimg_fully_grown() == 9600


def test_stylegan_schedule_starts_at_8x8_and_is_grown_at_8400_kimg():
    sched = schedule.Schedule(resolution=1024, initial_resolution=8)
    assert sched.at(0.0).resolution == 8 and sched.at(0.0).lod == 7.0
    assert sched.kimg_fully_grown() == 8400
    assert sched.at(8399.0).lod > 0 and sched.at(8400.0).lod == 0.0
    assert sched.resolutions == (8, 16, 32, 64, 128, 256, 512, 1024)


def test_zero_transition_jumps_between_resolutions_without_fade():
    sched = schedule.Schedule(resolution=32, training_kimg=10, transition_kimg=0)
    assert [sched.at(k).resolution for k in (0, 9.9, 10, 19.9, 20, 30)] == [4, 4, 8, 8, 16, 32]
    assert all(sched.at(k).fade_alpha == 1.0 for k in (0, 5, 10, 15, 25))


def test_minibatch_and_learning_rate_follow_the_v2_preset():
    sched = schedule.Schedule(resolution=1024)
    batches = {res: sched.minibatch_at(res) for res in sched.resolutions}
    assert batches == {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4,
                       1024: 4}
    assert sched.at(0.0).g_lrate == sched.at(0.0).d_lrate == 0.001
    assert sched.at(9600.0).g_lrate == 0.0015
    assert sched.at(0.0).tick_kimg == 160 and sched.at(9600.0).tick_kimg == 10


def test_per_replica_cap_scales_with_the_replicas():
    sched = schedule.Schedule(resolution=1024, minibatch_base=32, minibatch_dict={},
                              max_minibatch_per_replica={256: 16, 512: 8, 1024: 4},
                              num_replicas=2)
    assert [sched.minibatch_at(r) for r in (128, 256, 512, 1024)] == [32, 32, 16, 8]


def test_minibatch_not_divisible_by_replicas_is_refused():
    sched = schedule.Schedule(resolution=32, minibatch_dict={4: 64, 8: 30}, num_replicas=4)
    with pytest.raises(ValueError, match="minibatch 30 at resolution 8 is not divisible by the 4"):
        sched.check_minibatches()
    schedule.Schedule(resolution=32, minibatch_dict={4: 64, 8: 32},
                      num_replicas=4).check_minibatches()


def test_lod_change_detects_floor_or_ceil_changes_only():
    assert schedule.lod_changed(8.0, None)
    assert not schedule.lod_changed(8.0, 8.0)
    assert schedule.lod_changed(7.9, 8.0)  # fade starts: ceil stays 8, floor drops to 7
    assert not schedule.lod_changed(7.5, 7.9)
    assert schedule.lod_changed(7.0, 7.1)  # fade ends: ceil drops to 7
    assert not schedule.lod_changed(7.0, 7.0)


def test_fade_alpha_is_one_minus_the_fraction_of_lod():
    for lod in (0.0, 0.25, 3.5, 6.9):
        assert schedule.fade_alpha_at_lod(lod) == pytest.approx(1 - (lod - math.floor(lod)))


def test_parse_resolution_dict_round_trips():
    text = "4:128,8:128,16:64"
    parsed = schedule.parse_resolution_dict(text)
    assert parsed == {4: 128, 8: 128, 16: 64}
    assert schedule.format_resolution_dict(parsed) == text
    assert schedule.parse_resolution_dict("") == {}
    assert schedule.parse_resolution_dict(" 1024 : 0.0015 ", "--lrate_dict", float) == {
        1024: 0.0015}
    # Whole floats are written as integers, so a parsed float table prints as it was given.
    floats = schedule.parse_resolution_dict("4:160,8:2.5", "--tick_kimg_dict", float)
    assert schedule.format_resolution_dict(floats) == "4:160,8:2.5"


def test_schedule_class_by_name():
    assert schedule.schedule_class("progan") is schedule.Schedule
    assert schedule.schedule_class("rosinality") is schedule.RosinalitySchedule
    with pytest.raises(ValueError, match=r"^--schedule: must be one of progan, rosinality"):
        schedule.schedule_class("linear")


@pytest.mark.parametrize("text, message", [
    ("4-128", r"--minibatch_dict: expected comma-separated resolution:value pairs .* '4-128'"),
    ("4:12.5", r"expected .* '4:12.5'"),
    ("6:32", r"resolution must be a power of two >= 4, got 6"),
    ("2:32", r"power of two >= 4, got 2"),
    ("4:32,4:16", r"resolution 4 given twice"),
    ("8:0", r"value must be positive, got '0' for resolution 8"),
    ("8:-4", r"value must be positive"),
])
def test_parse_resolution_dict_names_the_flag_and_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        schedule.parse_resolution_dict(text, "--minibatch_dict")


@pytest.mark.parametrize("kwargs, message", [
    (dict(resolution=48), "resolution must be a power of two"),
    (dict(resolution=32, initial_resolution=64), "lod_initial_resolution"),
    (dict(resolution=32, training_kimg=-1), "must be >= 0"),
])
def test_schedule_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        schedule.Schedule(**kwargs)
