"""Training: `python -m pav.train [data=...] [model=...] [trainer=...] [key=value ...]` (or `python train.py`).

config.py is the typed schema of configs/train.yaml, run.py one run (data, system, Lightning, resume, final
metrics), system.py the LightningModule that wires the renderer to the losses, losses.py the pure loss
functions, checkpoint.py loads a trained avatar back.
"""
