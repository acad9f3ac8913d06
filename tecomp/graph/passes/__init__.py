"""Graph passes, functions ``(Graph, params) -> (Graph, params)``, and the pipeline ``optimize``.

Order matters: dead-node elimination; epilogue absorption (bias adds and
activations become conv/dense arguments) around batch-norm folding, so a
folded batch norm's shift lands in the conv's bias and a following relu still
joins it; weight pre-packing and the layout pass rewrite operators whose
weights are constant into packed forms, emitting the packing as graph nodes
(on a cuda target: dense weights as one panel, convolutions stay NCHW);
constant folding then evaluates every all-constant node (folded batch norms,
reshaped biases, packed weights) with tecomp; a last dead-node elimination
drops the params nothing reads any more. ``params`` may be None (task
extraction): the passes then rewrite types only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...target import Target
from ..ir import Graph
from .batch_norm import fold_batch_norm
from .constant_fold import fold_constants
from .dead_code import eliminate_dead_nodes
from .epilogue import absorb_epilogues
from .layout import alter_conv_layout, pack_dense_weights

__all__ = ["absorb_epilogues", "alter_conv_layout", "eliminate_dead_nodes", "fold_batch_norm", "fold_constants",
           "optimize", "pack_dense_weights"]


def optimize(graph: Graph, params: Optional[dict[str, np.ndarray]], target: Target,
             layout: bool = True) -> tuple[Graph, Optional[dict]]:
    """The pass pipeline (see the module docstring); returns a validated graph and its param values."""
    graph, params = eliminate_dead_nodes(graph, params)
    graph, params = absorb_epilogues(graph, params)
    graph, params = fold_batch_norm(graph, params)
    graph, params = absorb_epilogues(graph, params)
    with target:  # the layout a tuned config was measured with is the target's
        graph, params = pack_dense_weights(graph, params)
        if layout and target.kind == "llvm":  # blocked NCHW[x]c is a CPU layout
            graph, params = alter_conv_layout(graph, params)
    graph, params = fold_constants(graph, params, target)
    graph, params = eliminate_dead_nodes(graph, params)
    graph.validate()
    return graph, params
