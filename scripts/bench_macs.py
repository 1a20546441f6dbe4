#!/usr/bin/env python3
"""Multiply-accumulates of an ONNX model at one input shape (for the compute floors in bench-engine.sh).

Usage: PY scripts/bench_macs.py MODEL.onnx N C H W      (PY: a Python with onnx, onnxruntime, numpy)
  e.g. scripts/bench_macs.py models/det-tiny.onnx 1 3 960 960   -> 2.98 GMAC

Counts Conv, ConvTranspose, MatMul and Gemm (everything else is memory-bound and ignored, as
usual for MAC counts). Shapes come from running the model once on zeros with onnxruntime, every
intermediate tensor exposed as an output: shape inference alone cannot follow the detectors'
Resize ops, whose sizes are computed at run time.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    path, dims = sys.argv[1], [int(d) for d in sys.argv[2:6]]
    model = onnx.load(path)
    graph = model.graph
    known = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in known:
                graph.output.append(onnx.ValueInfoProto(name=name))
                known.add(name)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the graph's own ops
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.zeros(dims, np.float32)}
    names = [o.name for o in sess.get_outputs()]
    shapes = {n: np.shape(v) for n, v in zip(names, sess.run(names, feed))}
    shapes[graph.input[0].name] = tuple(dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)

    macs, by_op = 0, {}
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w, y = shapes[node.input[1]], shapes[node.output[0]]
            m = int(np.prod(y)) * int(np.prod(w[1:]))  # each output: Cin/group × kh × kw
        elif node.op_type == "ConvTranspose":
            x, w = shapes[node.input[0]], shapes[node.input[1]]
            m = int(np.prod(x)) * int(np.prod(w[1:]))  # each input: (Cout/group) × kh × kw
        elif node.op_type in ("MatMul", "Gemm"):
            a, y = shapes[node.input[0]], shapes[node.output[0]]
            k = a[-1] if not (node.op_type == "Gemm" and attrs.get("transA", 0)) else a[0]
            m = int(np.prod(y)) * int(k)
        else:
            continue
        macs += m
        by_op[node.op_type] = by_op.get(node.op_type, 0) + m
    parts = ", ".join(f"{k} {v / 1e9:.3f}" for k, v in sorted(by_op.items()))
    print(f"{path} {'x'.join(map(str, dims))}: {macs / 1e9:.3f} GMAC ({parts})")


if __name__ == "__main__":
    main()
