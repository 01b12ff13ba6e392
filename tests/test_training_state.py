"""TrainingState: the checkpointed counters, their checkpoint names, and reading them back."""

import tensorflow as tf

from progan_tf.training import loss_scale
from progan_tf.training.state import TrainingState, read_state


def test_counters_start_at_zero_and_the_loss_scales_at_2_to_the_64():
    values = TrainingState().values()
    assert set(values) == set(TrainingState.names())
    assert values["prev_lod"] == -1.0
    assert values["d_loss_scale_log2"] == values["g_loss_scale_log2"] == loss_scale.INIT_LOG2
    assert all(values[name] == 0 for name in ("nimg", "data_position", "d_steps", "g_steps",
                                              "tick", "tick_start_nimg", "skipped_steps"))


def test_advance_and_start_tick_move_the_counters_together():
    state = TrainingState()
    state.advance(8)
    state.advance(8)
    assert state.values()["nimg"] == state.values()["data_position"] == 16
    state.start_tick()
    state.advance(8)
    values = state.values()
    assert (values["tick"], values["tick_start_nimg"], values["nimg"]) == (1, 16, 24)


def test_record_step_counts_steps_and_skipped_steps_in_total_and_in_a_row_per_network():
    state = TrainingState()
    for applied in (True, False, False):
        state.record_step("d", applied)
    state.record_step("g", False)
    assert state.nonfinite_in_a_row() == 2
    state.record_step("d", True)
    values = state.values()
    assert (values["skipped_steps"], values["d_nonfinite_in_a_row"],
            values["g_nonfinite_in_a_row"]) == (3, 0, 1)
    assert (values["d_steps"], values["g_steps"]) == (4, 1)


def test_record_step_in_a_tf_function_counts_as_eagerly():
    state = TrainingState()

    @tf.function
    def steps(flags):
        for index in range(3):
            state.record_step("g", flags[index])
        return state.nonfinite_in_a_row_tensor()

    assert steps(tf.constant([False, False, True])).numpy() == 0
    assert steps(tf.constant([True, False, False])).numpy() == 2
    values = state.values()
    assert (values["g_steps"], values["skipped_steps"], values["g_nonfinite_in_a_row"]) == (6, 4, 2)


def test_read_state_takes_a_prefix_or_the_checkpoints_directory(tmp_path):
    state = TrainingState()
    state.assign(nimg=1234, tick=7, prev_lod=0.5)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(state=state, other=tf.Variable(1.0)),
                                         str(tmp_path), max_to_keep=2)
    first = manager.save()
    state.advance(8)
    manager.save()
    assert read_state(str(tmp_path))["nimg"] == 1242
    values = read_state(first)
    assert (values["nimg"], values["tick"], values["prev_lod"]) == (1234, 7, 0.5)
