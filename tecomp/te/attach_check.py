"""The check of a schedule's attach points, run when the schedule is lowered.

As in TVM, ``compute_at`` records where a stage goes (checking only that the loop is one) and
the placement is checked when the schedule is lowered (``lower``, ``build``, ``InferBound``,
``ScheduleOps``), which raises ScheduleError (a RuntimeError, as TVM's TVMError is). A stage
must be placed at a loop of a stage that reads it (directly or through other stages). That
rules out its own loops, and cycles of placements too: each placement then leads downstream in
the dataflow, which has no cycles.
"""

from __future__ import annotations

from ..error import ScheduleError
from .schedule import Schedule


def check_attachments(sch: Schedule) -> None:
    """Raise ScheduleError naming the first stage placed where it cannot be computed."""
    for stage in sch.stages:
        if stage.attach_type != "scope":
            continue
        parent, loop = stage.attach_stage, stage.attach_ivar
        where = f"{stage.name} is computed at loop {loop.name} of {parent.name} (compute_at)"
        if parent is stage:
            raise ScheduleError(f"{where}, its own loop: a stage cannot be computed at its own loop; "
                                "compute it at a loop of a stage that reads it, or at root")
        if not sch.reads_transitively(parent, stage):
            raise ScheduleError(f"{where}, but {parent.name} does not read {stage.name}, so no loop of it "
                                f"can host {stage.name}; compute it at a loop of a stage that reads it")
