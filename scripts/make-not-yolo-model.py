#!/usr/bin/env python3
"""Writes tests/data/not_yolo.onnx: an image model whose output is not YOLO-shaped.

It takes `images` [1, 3, h, w] and returns the per-channel mean [1, 3], the
kind of classifier-style head a wrong model file would carry.
Needs: pip install onnx
"""
import pathlib

import onnx
from onnx import TensorProto, helper

root = pathlib.Path(__file__).resolve().parent.parent
images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", "width"])
means = helper.make_tensor_value_info("means", TensorProto.FLOAT, [1, 3])
node = helper.make_node("GlobalAveragePool", ["images"], ["pooled"])
flatten = helper.make_node("Flatten", ["pooled"], ["means"], axis=1)
graph = helper.make_graph([node, flatten], "not_yolo", [images], [means])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgesort-tests")
onnx.checker.check_model(model)
onnx.save(model, root / "tests/data/not_yolo.onnx")
