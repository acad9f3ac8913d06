"""Write the small ONNX models bundled for the README walk-through: ``python examples/models/make_models.py``.

``small_cnn.onnx``: conv-bn-relu-maxpool twice (16 then 32 channels), global average pool and a
10-class Gemm, input ``[1, 3, 32, 32]``; random weights from seed 0, built by
``benchmarks/onnx_models.py`` (onnx and numpy only). The file is about 25 KB, and rewriting it
gives the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))

import onnx_models  # noqa: E402


def small_cnn() -> onnx.ModelProto:
    return onnx_models.small_cnn(batch=1, image=32, classes=10, channels=(16, 32), seed=0)


MODELS = {"small_cnn.onnx": small_cnn}


def main(directory: Path = HERE) -> list[Path]:
    written = []
    for name, build in MODELS.items():
        path = directory / name
        onnx.save(build(), path)
        written.append(path)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return written


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
