"""`python -m pav.experiments protocol=a|b [data=synthetic budget=demo out=results root=DIR steps=0 eval_size=0
eval_views=0 device=auto]`: trains the protocol's models with one budget, evaluates them on the held-out views
and writes <out>/<data>/<protocol>.md with PNG plots. Finished models (checkpoint and metrics on disk) are skipped.
"""

from .protocol import ExperimentsConfig, ExperimentsError, run_protocol

__all__ = ["ExperimentsConfig", "ExperimentsError", "run_protocol"]
