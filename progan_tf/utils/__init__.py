"""Shared helpers without TensorFlow: images and grids (`images`), atomic file writes and
SavedModel versions (`files`), progress lines (`progress`), the restricted unpickler
(`safe_pickle`), resolution checks (`resolution`) and the run directory's lock (`run_lock`).
Import the submodules directly."""
