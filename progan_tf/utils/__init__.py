"""Shared helpers without TensorFlow: images and grids (`images`), atomic file writes and
SavedModel versions (`files`), progress lines (`progress`), the restricted unpickler
(`safe_pickle`) and resolution checks (`resolution`). Import the submodules directly."""
