"""Input encodings of 3D points for the neural fields."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..ops.hashgrid import HashGridSpec, hash_encode

HASHGRID_BACKENDS = ("auto", "ext", "torch", "tcnn")
TCNN_FEATURES = (1, 2, 4, 8)  # tiny-cuda-nn's HashGrid takes no other feature counts


class TinyCudaNNUnavailable(RuntimeError):
    """backend='tcnn' cannot run here; the message says why."""


def _import_tinycudann():
    try:
        import tinycudann
    except ImportError as exc:
        raise TinyCudaNNUnavailable(
            "HashGrid(backend='tcnn') needs tinycudann, which is not installed "
            "(pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch); "
            "backend='auto' uses pav's own hash-grid op instead"
        ) from exc
    except OSError as exc:  # installed, but its CUDA libraries do not load: no driver or no GPU here
        raise TinyCudaNNUnavailable(
            f"HashGrid(backend='tcnn') needs tinycudann on a CUDA GPU, and it does not load here ({exc}); "
            "backend='auto' uses pav's own hash-grid op instead"
        ) from exc
    return tinycudann


def _tcnn_device() -> torch.device:
    """The GPU of this process: tinycudann makes its parameters on the current device, and under DDP every rank
    builds its model before Lightning sets that device (LOCAL_RANK says which one it will be)."""
    if not torch.cuda.is_available():
        raise TinyCudaNNUnavailable("HashGrid(backend='tcnn') runs on a CUDA GPU only; torch sees none")
    local_rank = os.environ.get("LOCAL_RANK")
    return torch.device("cuda", int(local_rank) if local_rank is not None else torch.cuda.current_device())


class HashGrid(nn.Module):
    """Multiresolution hash-grid encoding: points [N, 3] in the unit box -> features [N, n_levels * n_features].

    backend: "auto" (pav._C when it builds, else the pure-torch twin), "ext" (pav._C or an error),
    "torch" (the twin), "tcnn" (tiny-cuda-nn's HashGrid with the same levels, CUDA points only; it keeps
    its own parameters, initialisation and corner conventions, so its features are not pav's).
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features: int = 2,
        log2_hashmap_size: int = 18,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if backend not in HASHGRID_BACKENDS:
            raise ValueError(f"HashGrid: backend must be one of {HASHGRID_BACKENDS}, got {backend!r}")
        self.spec = HashGridSpec(n_levels, n_features, log2_hashmap_size, base_resolution, finest_resolution)
        self.backend = backend
        if backend == "tcnn":
            if n_features not in TCNN_FEATURES:
                raise ValueError(f"HashGrid(backend='tcnn'): tinycudann takes {TCNN_FEATURES} features per level, "
                                 f"got n_features={n_features}")
            tcnn = _import_tinycudann()
            with torch.cuda.device(_tcnn_device()):
                self.tcnn_encoding = tcnn.Encoding(3, self.tcnn_config(), dtype=torch.float32)
        else:
            self.table = nn.Parameter(torch.empty(self.spec.n_params, n_features).uniform_(-1e-4, 1e-4))

    @property
    def n_output_dims(self) -> int:
        return self.spec.n_output_dims

    def tcnn_config(self) -> dict:
        """tiny-cuda-nn's encoding config for the same levels."""
        return {
            "otype": "HashGrid",
            "n_levels": self.spec.n_levels,
            "n_features_per_level": self.spec.n_features,
            "log2_hashmap_size": self.spec.log2_hashmap_size,
            "base_resolution": self.spec.base_resolution,
            "per_level_scale": self.spec.growth_factor,
        }

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points [N, 3] in [0, 1]^3 -> [N, n_levels * n_features]."""
        if self.backend != "tcnn":
            return hash_encode(points, self.table, self.spec, backend=self.backend)
        if not points.is_cuda:
            raise RuntimeError(f"HashGrid(backend='tcnn') runs on CUDA points only, got device {points.device}")
        return self.tcnn_encoding(points.float()).float()  # [N, L*F]

    def extra_repr(self) -> str:
        spec = self.spec
        return (
            f"levels={spec.n_levels}, features={spec.n_features}, log2_hashmap_size={spec.log2_hashmap_size}, "
            f"resolution={spec.base_resolution}..{spec.finest_resolution}, backend={self.backend!r}"
        )
