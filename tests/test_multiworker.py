"""--strategy=multi_worker for real: two worker processes on 127.0.0.1 (free ports, loopback
only, each under `timeout -k` and a subprocess timeout so a hung peer cannot hang the suite).

They reproduce a single-process run on the same global batch (losses and summed gradients,
rtol 1e-5), only the chief writes files, a killed worker stops the other with a clear error
within --worker_timeout_sec, and `--resume=auto` continues from the chief's last checkpoint; a
worker stopped with SIGSTOP (alive, silent) stops the chief the same way, and a chief that finds
its run directory locked stops the workers at once.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from progan_tf.training.state import read_state
from tests import training_common as common
from tests.training_common import write_pyramid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARD_LIMIT_SEC = 150  # per worker process
STOP_TIMEOUT_SEC = 120  # for the chief to stop after its peer is killed: 12x --worker_timeout_sec


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def worker_env(ports, index):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    return dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2",
                CUDA_VISIBLE_DEVICES="")


def start_workers(args_for, limit=HARD_LIMIT_SEC):
    ports = free_ports(2)
    return [subprocess.Popen(["timeout", "-k", "5", str(limit), sys.executable, *args_for(index)],
                             cwd=REPO, env=worker_env(ports, index), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
            for index in range(2)]


def kill_group(proc):
    """SIGKILL to the worker and its `timeout` wrapper (one process group per worker)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def finish(procs, timeout=HARD_LIMIT_SEC + 15):
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            for other in procs:
                kill_group(other)
            raise
    return outputs


def test_two_workers_reproduce_one_process_on_the_same_global_batch(tmp_path):
    outputs = [tmp_path / f"worker-{index}.npz" for index in range(2)]
    procs = start_workers(lambda i: ["tests/multiworker_worker.py", str(outputs[i])])
    logs = finish(procs)
    for proc, (_, stderr) in zip(procs, logs):
        assert proc.returncode == 0, stderr[-3000:]
    reference = common.run_steps(common.tiny_config(),
                                 tf.distribute.OneDeviceStrategy("/cpu:0"), common.STEPS)
    assert 0 < float(reference["alpha"]) < 1  # the fade-in path of both networks is used
    for path in outputs:
        result = dict(np.load(path, allow_pickle=False))
        assert sorted(result) == sorted(reference)
        for key, value in reference.items():
            if key.startswith(("stepwise/", "fused/")):
                continue  # weights after Adam steps: compared within each process below
            np.testing.assert_allclose(result[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
        # All steps in one call (a tf.while_loop whose steps all-reduce across the workers)
        # end where one step per call ends.
        fused = [key for key in result if key.startswith("fused/")]
        assert len(fused) > 50
        for key in fused:
            np.testing.assert_allclose(result[key], result[key.replace("fused/", "stepwise/")],
                                       rtol=0, atol=1e-6, err_msg=key)


def cli_args(data_dir, results_dir, *extra):
    return ["-m", "progan_tf.train", f"--data_dir={data_dir}", f"--results_dir={results_dir}",
            "--fmap_base=64", "--fmap_max=16", "--minibatch_base=8", "--minibatch_dict=",
            "--minibatch_repeats=1", "--lod_training_kimg=0.016", "--lod_transition_kimg=0.016",
            "--tick_kimg_base=0.016", "--tick_kimg_dict=", "--grid_size=4x2", "--export=false",
            "--strategy=multi_worker", "--resume=auto", "--desc=blobs", *extra]


def files_under(path):
    return sorted(os.path.relpath(os.path.join(root, name), path)
                  for root, _, names in os.walk(path) for name in names)


def test_killed_worker_stops_the_other_and_both_resume_from_the_chiefs_checkpoint(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", common.tiny_images(64))
    # Separate results directories, as on two machines: only the chief's may receive files.
    results = [tmp_path / "chief-results", tmp_path / "worker-results"]
    procs = start_workers(lambda i: cli_args(data_dir, results[i], "--total_kimg=100",
                                             "--worker_timeout_sec=10"))
    checkpoint_state = results[0] / "00000-blobs" / "checkpoints" / "checkpoint"
    deadline = time.time() + 120
    while time.time() < deadline and procs[0].poll() is None and not checkpoint_state.exists():
        time.sleep(0.2)
    assert checkpoint_state.exists(), finish(procs)[0][1][-3000:]
    kill_group(procs[1])  # the worker dies mid-training
    # The chief must stop by itself (--worker_timeout_sec=10): if it hangs, finish's generous
    # timeout fails the test (and `timeout` would end the chief with exit code 124, not 1).
    (_, chief_err), _ = finish(procs, timeout=STOP_TIMEOUT_SEC)
    assert procs[0].returncode == 1, chief_err[-3000:]
    assert "lost a peer worker" in chief_err and "--resume=auto" in chief_err, chief_err[-3000:]
    assert "Traceback" not in chief_err
    assert not results[1].exists() or files_under(results[1]) == []
    saved_kimg = read_state(str(checkpoint_state.parent))["nimg"] / 1000

    procs = start_workers(lambda i: cli_args(data_dir, results[i],
                                             f"--total_kimg={saved_kimg + 0.032:.3f}"))
    logs = finish(procs)
    for proc, (_, stderr) in zip(procs, logs):
        assert proc.returncode == 0, stderr[-3000:]
    run_dir = results[0] / "00000-blobs"
    assert sorted(os.listdir(results[0])) == ["00000-blobs"]  # resumed in place
    log = (run_dir / "log.txt").read_text()
    assert f"at kimg {saved_kimg:.1f}" in log and "Training done" in log
    assert (run_dir / "_training-done.txt").exists()
    assert read_state(str(run_dir / "checkpoints"))["nimg"] == round((saved_kimg + 0.032) * 1000)
    assert not results[1].exists() or files_under(results[1]) == []


def test_a_stopped_worker_makes_the_chief_stop_with_one_clear_line(tmp_path):
    """SIGSTOP: the worker is alive but silent (no connection reset), so only
    --worker_timeout_sec can end the chief's wait."""
    data_dir = write_pyramid(tmp_path / "blobs-16", common.tiny_images(64))
    results = [tmp_path / "chief-results", tmp_path / "worker-results"]
    procs = start_workers(lambda i: cli_args(data_dir, results[i], "--total_kimg=100",
                                             "--worker_timeout_sec=10"))
    try:
        checkpoint_state = results[0] / "00000-blobs" / "checkpoints" / "checkpoint"
        deadline = time.time() + 120
        while time.time() < deadline and procs[0].poll() is None and not checkpoint_state.exists():
            time.sleep(0.2)
        assert checkpoint_state.exists(), finish(procs)[0][1][-3000:]
        os.killpg(procs[1].pid, signal.SIGSTOP)  # the worker and its `timeout` wrapper
        stopped = time.time()
        _, chief_err = procs[0].communicate(timeout=STOP_TIMEOUT_SEC)
        print(f"the chief stopped {time.time() - stopped:.1f} s after its peer")
        assert procs[0].returncode == 1, chief_err[-3000:]
        last_line = chief_err.strip().splitlines()[-1]
        assert last_line.startswith("progan_tf.train: error: --strategy=multi_worker: lost a "
                                    "peer worker ("), chief_err[-3000:]
        assert last_line.endswith("--resume=auto to continue from the last checkpoint in "
                                  f"{results[0] / '00000-blobs'}")
        assert "Traceback" not in chief_err
        assert read_state(str(checkpoint_state.parent))["nimg"] > 0  # its checkpoint loads
    finally:
        for proc in procs:
            kill_group(proc)  # SIGKILL ends a stopped process too
            proc.communicate(timeout=30)


def test_workers_stop_at_once_when_the_chief_finds_its_run_directory_locked(tmp_path):
    from progan_tf.training import loop
    from progan_tf.utils import run_lock

    data_dir = write_pyramid(tmp_path / "blobs-16", common.tiny_images(64))
    results = [tmp_path / "chief-results", tmp_path / "worker-results"]
    # A run to resume, made in this process with the flags of cli_args.
    cfg = common.tiny_config(results[0], data_dir=data_dir, desc="blobs", total_kimg=0.016)
    run_dir = loop.train(cfg, log_stream=open(os.devnull, "w")).run_dir
    lock = run_lock.acquire(run_dir)  # another run trains in it
    try:
        before = {name: open(os.path.join(run_dir, name), "rb").read()
                  for name in files_under(run_dir)}
        # The default --worker_timeout_sec (300) exceeds the generous bound below: a worker that
        # waited for its chief's collectives would fail the test.
        procs = start_workers(lambda i: cli_args(data_dir, results[i], "--total_kimg=100",
                                                 f"--resume={run_dir}"))
        logs = finish(procs, timeout=STOP_TIMEOUT_SEC)
        after = {name: open(os.path.join(run_dir, name), "rb").read()
                 for name in files_under(run_dir)}
    finally:
        lock.release()
    assert after == before  # the lock file still names this process; nothing else changed
    refusal = (f"{run_dir} is in use by another training run: pid {os.getpid()} on host "
               f"{socket.gethostname()} holds its lock _run.lock; stopped without writing "
               f"anything. Wait for that run to end (or stop it) and try again")
    (_, chief_err), (_, worker_err) = logs
    assert procs[0].returncode == 1, chief_err[-3000:]
    assert chief_err.strip().splitlines()[-1] == f"progan_tf.train: error: {refusal}"
    assert procs[1].returncode == 1, worker_err[-3000:]
    assert worker_err.strip().splitlines()[-1] == (
        f"progan_tf.train: error: the chief worker stopped: {refusal}")
    assert "Traceback" not in chief_err + worker_err
    assert not results[1].exists() or files_under(results[1]) == []
