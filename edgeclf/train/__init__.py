"""Transfer learning: cached backbone features, a fast head, a run directory."""

from .._callable import make_callable

make_callable(__name__, "edgeclf.train.trainer", "train")
