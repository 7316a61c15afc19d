"""Assembling a model's ONNX graph: contract inputs, preprocessing, estimator.

skl2onnx converts the estimators (tree ensembles, isolation forest) from
a plain float matrix; :meth:`GraphBuilder.graft` splices that graph in
after the preprocessing nodes, renaming its tensors so the pieces never
collide.  The graph's inputs are the contract's 41 named [N, 1] features
(:mod:`sensor.models.schema`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sensor.models.schema import FEATURES, input_type

OPSET = 17      # ai.onnx; onnxruntime >= 1.14 runs it
ML_OPSET = 3    # ai.onnx.ml
_ELEMENT = {"float": TensorProto.FLOAT, "string": TensorProto.STRING}


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs = [helper.make_tensor_value_info(n, _ELEMENT[input_type(n)], ["N", 1]) for n in FEATURES]
        self._count = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value) -> str:
        name = self._fresh("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], *, domain: str = "", output: str | None = None, **attrs) -> str:
        output = output or self._fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=self._fresh(op), domain=domain, **attrs))
        return output

    def graft(self, model: onnx.ModelProto, inputs: dict[str, str], prefix: str) -> dict[str, str]:
        """Copy ``model``'s graph in, feeding its inputs from ``inputs``
        (its input name -> our tensor); returns its output name -> our tensor."""
        graph = model.graph
        rename = dict(inputs)

        def ours(name: str) -> str:
            if name and name not in rename:
                rename[name] = f"{prefix}/{name}"
            return rename.get(name, name)

        for init in graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = ours(init.name)
            self.initializers.append(copy)
        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{prefix}/{node.name}"
            copy.input[:] = [ours(n) for n in node.input]
            copy.output[:] = [ours(n) for n in node.output]
            self.nodes.append(copy)
        return {o.name: ours(o.name) for o in graph.output}

    def build(self, outputs: list[onnx.ValueInfoProto], metadata: dict[str, str], doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "sensor", self.inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
            producer_name="sensor",
            doc_string=doc,
        )
        model.ir_version = 8  # readable by onnxruntime >= 1.10
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model


def float_output(name: str, *shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def string_output(name: str, *shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.STRING, list(shape))


def convert(estimator, width: int):
    """skl2onnx conversion of ``estimator`` fed an [N, width] float matrix named X."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(
        estimator,
        initial_types=[("X", FloatTensorType([None, width]))],
        options={id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None,
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
