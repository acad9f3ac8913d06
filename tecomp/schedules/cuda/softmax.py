"""CUDA schedules of ``softmax``/``log_softmax`` and their tuning template.

Three kernels: the row maximum and the row sum of ``exp(x - max)`` each run one thread per
row (a register accumulator, 16 of them for a long row split into lane partials) or, for
fewer and longer rows, one block per row whose threads combine their partials (a
cross-thread reduction); ``exp`` is recomputed where it is read, never stored. Then the
output runs one thread per element over all rows, reading both row statistics. The row
statistics live in global memory between the kernels (workspaces the runtime provides).
"""

from __future__ import annotations

import math
from typing import Any

from ... import te
from ... import tuner as autotvm
from ...te.schedule import Schedule, create_schedule
from ...te.tensor import Tensor
from ...tuner.space import FallbackConfigEntity
from ..common import PARTIAL_TAG, as_list, producers_named
from ..softmax import log_softmax, softmax
from .common import (bind_flat, default_row_threads, dispatched, fuse_all, num_elements, reduce_across_threads,
                     reduce_per_thread)

TEMPLATE = "schedules/cuda/softmax"


def schedule_softmax_output(s: Schedule, out: Tensor, threads: int = 128, vector: int = 4,
                            row_threads: int = 1) -> None:
    """Schedule one softmax/log_softmax output and its row statistics inside ``s``
    (``row_threads`` > 1: each statistic a block per row, see ``reduce_across_threads``)."""
    stats = producers_named(out, lambda name: name in ("row_max", "row_exp", "row_sum", "row_max_partial",
                                                       "row_sum_partial"))
    for t in stats:
        if t.op.name == "row_exp":
            s[t].compute_inline()
        elif t.op.tag != PARTIAL_TAG:
            (reduce_across_threads(s, t, row_threads) if row_threads > 1 else reduce_per_thread(s, t, threads))
    total = num_elements(out)
    lanes = vector if total is not None and total % vector == 0 and out.shape[-1].value % vector == 0 else 1
    bind_flat(s[out], fuse_all(s[out]), threads, lanes)


def schedule_softmax(outs: Any, threads: int | None = None) -> Schedule:
    """CUDA schedule of softmax/log_softmax over any axis (see the module docstring)."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for o in outs:
        shape = tuple(d.value for d in o.shape)
        axis_ = o.op.attrs["softmax_axis"]
        cfg = dispatched(TEMPLATE, (shape, axis_, o.dtype, o.op.name == "log_softmax"))
        if isinstance(cfg, FallbackConfigEntity):
            row_threads = default_row_threads(math.prod(shape) // shape[axis_], shape[axis_])
        else:
            row_threads = cfg["row_threads"].val
        schedule_softmax_output(s, o, threads or cfg["threads"].val, row_threads=row_threads)
    return s


schedule_log_softmax = schedule_softmax


@autotvm.template(TEMPLATE)
def softmax_template(shape: tuple, axis_: int = -1, dtype: str = "float32",
                     log: bool = False) -> tuple[Schedule, list[Tensor]]:
    """Tunable CUDA softmax/log_softmax: knobs threads per block (the output kernel, and the row
    statistics when a thread takes a row), threads per row statistic (1: a thread per row)."""
    x = te.placeholder(tuple(shape), dtype, name="x")
    out = (log_softmax if log else softmax)(x, axis_)
    cfg = autotvm.get_config()
    cfg.define_knob("threads", [128, 64, 256, 32])
    cfg.define_knob("row_threads", [1, 32, 128])
    s = create_schedule(out.op)
    schedule_softmax_output(s, out, cfg["threads"].val, row_threads=cfg["row_threads"].val)
    return s, [x, out]
