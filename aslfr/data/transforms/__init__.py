"""Frame transforms for training: the inference-path `FrameTransform` (`frame`), and the reference's
training pipeline as a functional layer (`functional`), a random layer (`augment`) and the
`reference_preprocess` entry point with its presets (`reference`)."""
