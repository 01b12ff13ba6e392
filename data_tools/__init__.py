"""Multi-resolution TFRecord pyramids in the original ProGAN format: create, inspect, verify.

Run `python -m data_tools --help`. Modules: `records` (TFRecord framing, `tf.train.Example`
encoding and random-access reading), `pyramid` (level layout, `open_pyramid`, `PyramidWriter`),
`sources/` (one module per input format), `commands` (info, verify, extract, compare), `cli`.
"""
