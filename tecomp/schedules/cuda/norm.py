"""CUDA schedule of ``layer_norm``: two row-statistic kernels, then the normalised output.

The mean and the variance of each row are sums over the normalised axes (``ln_mean_sum``,
``ln_var_sum``; a long last axis is split into 16 lane partials): each is a kernel of its own,
a block per row whose threads combine their partials (a cross-thread reduction) while the rows
alone would leave most of a GPU idle, else a thread per row with register accumulators. The
scaling by the row length is inlined where the statistics are read; the output is an
elementwise kernel reading both statistics from global memory.
"""

from __future__ import annotations

import math
from typing import Any

from ...te.schedule import Schedule, create_schedule
from ..common import PARTIAL_TAG, as_list, producers_named
from ..norm import LEAD_ATTR
from .common import DEFAULT_THREADS, default_row_threads, reduce_across_threads, reduce_per_thread
from .injective import schedule_injective_stage


def schedule_layer_norm(outs: Any, threads: int = DEFAULT_THREADS) -> Schedule:
    """CUDA schedule of layer_norm outputs (see the module docstring)."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for out in outs:
        shape = tuple(d.value for d in out.shape)
        lead = out.op.attrs[LEAD_ATTR]
        row_threads = default_row_threads(math.prod(shape[:lead]), math.prod(shape[lead:]))
        for t in producers_named(out, lambda name: name.startswith("ln_")):
            if not t.op.reduce_axis:
                s[t].compute_inline()
            elif t.op.tag == PARTIAL_TAG:
                continue  # computed in registers by the statistic that reads it
            elif row_threads > 1:
                reduce_across_threads(s, t, row_threads)
            else:
                reduce_per_thread(s, t, threads)
        schedule_injective_stage(s, out, threads)
    return s
