"""Training precision (--precision): the Keras dtype policy of the networks, whether float16 loss
scaling runs, and the one warning line when bfloat16 would be slow on this machine's CPU."""

import os

from progan_tf import ONEDNN_VARIABLE

# --precision -> Keras dtype policy of G, D and the EMA generator. The mixed policies keep the
# variables (the master weights, the optimizer's slots, the EMA) in float32.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# /proc/cpuinfo flags of the x86 instructions oneDNN computes bfloat16 convolutions with.
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = "/proc/cpuinfo"


def policy(precision):
    """Keras dtype policy name of `precision` (a config.PRECISIONS entry)."""
    return POLICIES[precision]


def loss_scaling(precision):
    """True for float16 only: bfloat16 has float32's exponent range, gradients do not underflow."""
    return precision == "float16"


def read_cpu_flags(path=CPUINFO):
    """The CPU feature flags of the first "flags" line of /proc/cpuinfo as a set, or None where
    that file or line does not exist (not Linux): unknown."""
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def onednn_switched_off(environ=None):
    """True when TF_ENABLE_ONEDNN_OPTS turns oneDNN off ("0" or "false", as TensorFlow reads it)."""
    value = (os.environ if environ is None else environ).get(ONEDNN_VARIABLE)
    return value is not None and value.strip().lower() in ("0", "false")


def onednn_setting():
    """"on (TF_ENABLE_ONEDNN_OPTS=...)" or "off (...)": whether TensorFlow's oneDNN kernels
    are in use in this process, and the variable that chose it (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port
    state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    return f"{state} ({ONEDNN_VARIABLE}={os.environ.get(ONEDNN_VARIABLE, 'unset')})"


def bfloat16_warning(precision, on_accelerator, environ=None):
    """One line saying why `precision` will be slow on this CPU, or None.

    Only bfloat16 on the CPU (on_accelerator False: no GPU or TPU) is judged: slow when oneDNN is
    switched off (TensorFlow's own CPU kernels emulate bfloat16 through float32) or when
    /proc/cpuinfo lists neither avx512_bf16 nor amx_bf16 (no bfloat16 arithmetic in the CPU).
    Where the flags cannot be read, nothing is claimed about the CPU."""
    if precision != "bfloat16" or on_accelerator:
        return None
    reasons = []
    if onednn_switched_off(environ):
        reasons.append("oneDNN is switched off (TF_ENABLE_ONEDNN_OPTS=0), so TensorFlow's own "
                       "CPU kernels emulate bfloat16 through float32")
    cpu_flags = read_cpu_flags()
    if cpu_flags is not None and not cpu_flags.intersection(CPU_BFLOAT16_FLAGS):
        reasons.append("this CPU has neither AVX512-BF16 nor AMX (no avx512_bf16 or amx_bf16 in "
                       "/proc/cpuinfo), so it has no bfloat16 arithmetic")
    if not reasons:
        return None
    return (f"warning: --precision=bfloat16 will be slow here: {'; '.join(reasons)}; "
            f"--precision=float32 is faster on this machine")
