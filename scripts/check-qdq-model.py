#!/usr/bin/env python3
"""Checks a Q/DQ model written by `edgesort calibrate` with NVIDIA's and
ONNX's own tools' view of the format, and runs it in ONNX Runtime.

1. The ONNX checker (full check, with shape inference).
2. What TensorRT's explicit-quantization parser requires: int8 zero points
   equal to 0, FP32 scales, per-channel weight scales on axis 0.
3. ONNX Runtime runs it: Ultralytics' validator (which executes ONNX models
   through ONNX Runtime) scores it on a YOLO dataset at 640x640, to compare
   with `edgesort eval --model MODEL --input 640x640`, where tract executes
   the same Q/DQ nodes.

Usage: check-qdq-model.py MODEL.qdq.onnx DATASET_DIR
Needs (outside the repo, e.g. in a venv):
  pip install onnx ultralytics==8.3.150 onnxruntime
Ultralytics refuses a dataset YAML without `train` and writes a label cache
next to the labels, so the set is copied to a scratch folder first.
"""
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

CLASSES = ["bolt", "nut", "washer", "spring", "foreign"]
model_path, dataset = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

model = onnx.load(str(model_path))
onnx.checker.check_model(model, full_check=True)
print(f"onnx checker: ok (opset {model.opset_import[0].version}, {len(model.graph.node)} nodes)")

initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
problems = []
counts = {"QuantizeLinear": 0, "DequantizeLinear": 0, "per-channel": 0}
for node in model.graph.node:
    if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
        continue
    counts[node.op_type] += 1
    scale, zero_point = initializers[node.input[1]], initializers[node.input[2]]
    if scale.dtype != np.float32 or not (scale > 0).all():
        problems.append(f"{node.name}: scale {scale.dtype} not positive FP32")
    if zero_point.dtype != np.int8 or zero_point.any():
        problems.append(f"{node.name}: zero point {zero_point.dtype} not int8 0")
    if scale.ndim == 1:
        counts["per-channel"] += 1
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if axis != 0:
            problems.append(f"{node.name}: per-channel axis {axis}, TensorRT wants 0")
print(f"TensorRT Q/DQ rules: {counts}, problems: {problems or 'none'}")
if problems:
    sys.exit(1)

from ultralytics import YOLO  # noqa: E402  (slow import, only once the format checks pass)

scratch = pathlib.Path(tempfile.mkdtemp())
data = scratch / "data"
shutil.copytree(dataset, data)
yaml = scratch / "data.yaml"
names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
yaml.write_text(f"path: {data}\ntrain: images\nval: images\nnames:\n{names}\n")
metrics = YOLO(str(model_path), task="detect").val(
    data=str(yaml), imgsz=640, batch=1, rect=False, conf=0.001, iou=0.7, device="cpu",
    plots=False, project=str(scratch / "runs"), name="val")
print(f"onnxruntime via ultralytics, 640x640: mAP50 {metrics.box.map50:.4f} mAP50-95 {metrics.box.map:.4f}")
