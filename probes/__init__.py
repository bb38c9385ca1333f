"""Linear probes that locate goal features in an agent's activations, with controls.

    import probes
    res = probes.run_probe("rollouts.h5", "coin_visible", layers=["embedder.block2.*"])
    res.best_layer, res.score("agent", res.best_layer), res.channels[:5]
    res.save("out/coin_visible")

See docs/probes.md for the method, the controls and how to read the outputs.
"""

from probes.data import ArrayRecording
from probes.evaluate import Score, group_folds
from probes.features import Feature, ProbeError, get_feature, load_catalogue
from probes.run import CONTROLS, ProbeOptions, ProbeResults, run_probe

__all__ = ["ArrayRecording", "CONTROLS", "Feature", "ProbeError", "ProbeOptions",
           "ProbeResults", "Score", "get_feature", "group_folds", "load_catalogue", "run_probe"]
