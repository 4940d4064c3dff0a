#!/usr/bin/env python3
"""Produces the reference figures the accuracy evaluator is checked against.

Runs Ultralytics' validator on the square demo model over the bundled
validation set, copies its predictions.json into tests/data/eval/, and scores
those same predictions with pycocotools. The figures it prints are the
constants in tests/system/eval.rs.

Needs (outside the repo, e.g. in a venv):
  pip install ultralytics==8.3.150 onnxruntime pycocotools
and ../shared/models/sorter_yolov8n_640.onnx beside the checkout.
Ultralytics refuses a dataset YAML without `train`, and writes a label cache
next to the labels, so the set is copied to a scratch folder first.
"""
import json
import pathlib
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from ultralytics import YOLO

CLASSES = ["bolt", "nut", "washer", "spring", "foreign"]
root = pathlib.Path(__file__).resolve().parent.parent
model = root.parent / "shared/models/sorter_yolov8n_640.onnx"
scratch = pathlib.Path(tempfile.mkdtemp())
data = scratch / "val_small"
shutil.copytree(root / "tests/data/val_small", data)
yaml = scratch / "val_small.yaml"
names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
yaml.write_text(f"path: {data}\ntrain: images\nval: images\nnames:\n{names}\n")

metrics = YOLO(str(model), task="detect").val(
    data=str(yaml), imgsz=640, batch=1, conf=0.001, iou=0.7, device="cpu",
    save_json=True, plots=False, project=str(scratch / "runs"), name="val")
print(f"ultralytics: mAP50 {metrics.box.map50:.6f} mAP50-95 {metrics.box.map:.6f}")
predictions_path = pathlib.Path(metrics.save_dir) / "predictions.json"
target = root / "tests/data/eval/ultralytics_640_val_small_predictions.json"
shutil.copy(predictions_path, target)

images, annotations = [], []
for path in sorted((data / "images").glob("*.jpg")):
    width, height = Image.open(path).size
    images.append({"id": path.stem, "width": width, "height": height})
    for line in (data / "labels" / f"{path.stem}.txt").read_text().split("\n"):
        if not line.strip():
            continue
        c, cx, cy, w, h = line.split()
        cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        annotations.append({"id": len(annotations) + 1, "image_id": path.stem,
                            "category_id": int(c) + 1, "bbox": [cx - w / 2, cy - h / 2, w, h],
                            "area": w * h, "iscrowd": 0})
truth = COCO()
truth.dataset = {"images": images, "annotations": annotations,
                 "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
truth.createIndex()
evaluation = COCOeval(truth, truth.loadRes(json.loads(target.read_text())), "bbox")
evaluation.params.maxDets = [1, 10, 300]
evaluation.evaluate()
evaluation.accumulate()
precision = evaluation.eval["precision"][:, :, :, 0, 2]
print(f"pycocotools: mAP50 {np.mean(precision[0][precision[0] > -1]):.6f} "
      f"mAP50-95 {np.mean(precision[precision > -1]):.6f}", file=sys.stdout)
