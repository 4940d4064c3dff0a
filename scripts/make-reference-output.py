#!/usr/bin/env python3
"""Writes the ONNX Runtime reference that the tract backend is checked against.

Run once; its outputs are committed under tests/data/reference/:
  input_u8_3x384x640.bin   planar RGB bytes: demo frame 100, padded 12 rows of
                           114 above and below (the letterbox of a 640x360 frame)
  output_1x9x5040.f32      ONNX Runtime's output0 for input = bytes / 255, f32 LE

Needs: pip install onnxruntime numpy pillow
"""
import pathlib
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

root = pathlib.Path(__file__).resolve().parent.parent
out_dir = root / "tests/data/reference"
frame = np.asarray(Image.open(root / "tests/data/demo_clip/frames/000100.jpg").convert("RGB"))
assert frame.shape == (360, 640, 3), frame.shape
padded = np.full((384, 640, 3), 114, dtype=np.uint8)
padded[12:372] = frame
planar = np.ascontiguousarray(padded.transpose(2, 0, 1))
planar.tofile(out_dir / "input_u8_3x384x640.bin")

session = ort.InferenceSession(str(root / "models/sorter_yolov8n_dynamic.onnx"))
tensor = (planar.astype(np.float32) / np.float32(255.0))[None]
(output,) = session.run(["output0"], {"images": tensor})
assert output.shape == (1, 9, 5040), output.shape
output.astype("<f4").tofile(out_dir / "output_1x9x5040.f32")
print(f"onnxruntime {ort.__version__}: output {output.shape}, max score {output[0, 4:].max():.4f}", file=sys.stderr)
