#!/usr/bin/env python3
"""Writes the tiny, deterministic ONNX fixtures used by tests/media.rs.

Run from the repository root:  python3 scripts/make_test_onnx.py
Needs only the `onnx` and `numpy` packages. The output is byte-for-byte reproducible
(no random weights, fixed producer metadata), so the committed files can be regenerated and
diffed. Each model is small enough that its outputs can be checked by hand in the tests:

- mean_pool.onnx  `clip` [N,1,16,96,128] -> `features` [N,256]:
  ReduceMean over T, then AveragePool with 6x8 windows (96x128 -> 16x16 grid), flattened
  row-major. features[n, gy*16 + gx] = mean of clip[n, 0, :, 6gy:6gy+6, 8gx:8gx+8].
- wrong_shape.onnx  the same network for [N,1,8,96,128] (a shape-mismatch fixture).
- i3d_like.onnx  `clip` [N,3,16,224,224] -> `features` [N,2048]:
  ReduceMean over T,H,W -> [N,3], then MatMul with W[c, j] = ((3*j + c) % 17 - 8) / 8.
- corrupt.onnx  1 KiB of fixed pseudo-random bytes (not a protobuf model).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx")
OPSET = 17  # ReduceMean still takes `axes` as an attribute; supported by every ORT >= 1.14
IR_VERSION = 8


def save(graph, name):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="vigil/scripts/make_test_onnx.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(model.SerializeToString(deterministic=True))


def mean_pool(frames, name):
    clip = helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", 1, frames, 96, 128])
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 256])
    nodes = [
        helper.make_node("ReduceMean", ["clip"], ["over_t"], axes=[2], keepdims=0),  # [N,1,96,128]
        helper.make_node("AveragePool", ["over_t"], ["grid"], kernel_shape=[6, 8], strides=[6, 8]),
        helper.make_node("Flatten", ["grid"], ["features"], axis=1),  # [N,256]
    ]
    save(helper.make_graph(nodes, "mean_pool", [clip], [features]), name)


def i3d_like():
    c = np.arange(3).reshape(3, 1)
    j = np.arange(2048).reshape(1, 2048)
    w = (((3 * j + c) % 17) - 8).astype(np.float32) / np.float32(8.0)
    clip = helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", 3, 16, 224, 224])
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 2048])
    nodes = [
        helper.make_node("ReduceMean", ["clip"], ["pooled"], axes=[2, 3, 4], keepdims=0),  # [N,3]
        helper.make_node("MatMul", ["pooled", "w"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes, "i3d_like", [clip], [features], initializer=[numpy_helper.from_array(w, "w")]
    )
    save(graph, "i3d_like.onnx")


def corrupt():
    data = np.random.RandomState(20240531).bytes(1024)
    with open(os.path.join(OUT, "corrupt.onnx"), "wb") as f:
        f.write(data)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mean_pool(16, "mean_pool.onnx")
    mean_pool(8, "wrong_shape.onnx")
    i3d_like()
    corrupt()
    print("wrote fixtures to", os.path.normpath(OUT))
