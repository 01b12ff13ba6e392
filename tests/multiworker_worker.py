"""One worker of tests/test_multiworker.py (run as a script with TF_CONFIG set): gradients and
losses of a tiny model under MultiWorkerMirroredStrategy, saved to the .npz named by argv[1]."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from progan_tf.training import distribute  # noqa: E402
from tests.training_common import STEPS, run_steps, tiny_config  # noqa: E402


def main(out_path):
    strategy = distribute.make_strategy("multi_worker", worker_timeout_sec=60)
    results = run_steps(tiny_config(), strategy, STEPS)
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
