"""Training of ProGAN and StyleGAN (this package replaces progan_tf/trainer.py). It imports
nothing itself, so exports/ and metrics/ can use `run_dir` without pulling in the loop:

    loop.py        train(cfg) -> TrainResult: iterations, end of tick, stop; TrainingError
    steps.py       GanTrainer: networks, optimizers, EMA, the distributed D and G steps
    state.py       TrainingState: the checkpointed counters (nimg, data position, steps, ...)
    rng.py         RandomStreams: the stateless philox draws keyed by step counter
    precision.py   --precision: Keras dtype policy, loss scaling or not, the bfloat16 warning
    loss_scale.py  LossScale: loss scaling of --precision=float16
    snapshots.py   Renderer, Snapshots: image grids of the EMA generator, style mixing
    sources.py     InMemorySource, PyramidSource, open_source: the reals
    distribute.py  make_strategy, is_chief, broadcast_from_chief, split_batches
    run_dir.py     the run directory: file names, creation, resume discovery, checkpoints

    from progan_tf.training.loop import train
    result = train(cfg)  # cfg: progan_tf.config.TrainConfig
"""
