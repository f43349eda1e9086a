"""Optional ONNX Runtime backend for the denoiser g (`pip install "diffpose3d[onnx]"`).

The trained denoiser is exported once per process (PyTorch's TorchScript-based exporter, dynamic
batch) and run by ONNX Runtime on the CPU, whose kernels fuse the many small per-joint operations
(layer norms, GELUs, residual adds) that eager PyTorch runs one by one: about 1.4-1.8x the eager
throughput at the sampler's pass size on a 2-core CPU (`benchmarks/bench_sampler.py --backends`).
Outputs match PyTorch to float32 rounding. Inference only; training always runs in PyTorch.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffpose3d.errors import ConfigError, DiffPoseError

BACKENDS = ("torch", "onnxruntime")
_INSTALL_HINT = 'the onnxruntime backend needs the optional packages: pip install "diffpose3d[onnx]"'


def export_denoiser(denoiser: nn.Module, path: str | Path, batch: int = 4) -> Path:
    """Write `denoiser` (in eval mode, on the CPU) to an ONNX file with a dynamic batch axis."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise DiffPoseError(_INSTALL_HINT) from None
    path = Path(path)
    j, d, c = len(denoiser.parents), denoiser.state_dim, denoiser.context_dim
    example = (torch.zeros(batch, j, d), torch.zeros(batch, dtype=torch.long), torch.zeros(batch, j, c))
    axes = {name: {0: "batch"} for name in ("h_k", "k", "context", "h_0")}
    was_training = denoiser.training
    denoiser.eval()
    try:
        with warnings.catch_warnings():  # the exporter's notes on shape inference are not the user's concern
            warnings.simplefilter("ignore")
            torch.onnx.export(denoiser, example, str(path), input_names=["h_k", "k", "context"], output_names=["h_0"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    finally:
        denoiser.train(was_training)
    return path


def weight_versions(module: nn.Module) -> tuple[int, ...]:
    """In-place update counters of the module's tensors: they change whenever the weights do."""
    return tuple(t._version for t in (*module.parameters(), *module.buffers()))


class OnnxDenoiser:
    """Callable like the denoiser, `(h_k (B, J, D), k (B,), context (B, J, C)) -> (B, J, D)`, run by
    ONNX Runtime on `threads` CPU threads (default: torch's thread count)."""

    def __init__(self, denoiser: nn.Module, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DiffPoseError(_INSTALL_HINT) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.versions = weight_versions(denoiser)
        with tempfile.TemporaryDirectory() as tmp:  # the session keeps the model in memory
            path = export_denoiser(denoiser, Path(tmp) / "denoiser.onnx")
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, h_k: torch.Tensor, k: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        feed = {
            "h_k": h_k.detach().cpu().float().numpy(),
            "k": k.detach().cpu().long().numpy(),
            "context": context.detach().cpu().float().numpy(),
        }
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(np.ascontiguousarray(out)).to(h_k.device, h_k.dtype)


def switch_backend(backend: str, denoiser: nn.Module, device: torch.device) -> OnnxDenoiser | None:
    """The ONNX copy of `denoiser` g runs through for `backend` ("onnxruntime", CPU only), or None
    ("torch": the network itself); exported from the current weights."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown inference backend '{backend}' ({' | '.join(BACKENDS)})")
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ConfigError("the onnxruntime backend runs on the CPU; use --device cpu")
        return OnnxDenoiser(denoiser)
    return None


def current_copy(copy: OnnxDenoiser, denoiser: nn.Module) -> OnnxDenoiser:
    """`copy`, or a fresh export when `denoiser`'s weights changed since it was made."""
    return copy if copy.versions == weight_versions(denoiser) else OnnxDenoiser(denoiser)
