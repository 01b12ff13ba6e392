"""progan_tf/__init__.py: importing the package before TensorFlow turns TensorFlow's oneDNN
kernels on unless the environment sets TF_ENABLE_ONEDNN_OPTS (checked in fresh processes: the
setting is read once, when TensorFlow loads)."""

import os
import subprocess
import sys

import pytest

from training_common import REPO

_SCRIPT = ("import os, progan_tf, tensorflow; "
           "from tensorflow.python.util import _pywrap_util_port as port; "
           "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())")


@pytest.mark.parametrize("given, expected", [(None, "1 True"), ("0", "0 False"),
                                             ("1", "1 True")])
def test_onednn_is_on_unless_the_environment_says(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == expected
