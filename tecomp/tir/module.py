"""IRModule: the named PrimFuncs that ``tecomp.lower`` returns and ``tecomp.build`` compiles."""

from __future__ import annotations

from .stmt import PrimFunc


class IRModule:
    """An ordered collection of PrimFuncs, keyed by name."""

    def __init__(self, functions: dict[str, PrimFunc]):
        self.functions = dict(functions)

    @staticmethod
    def from_expr(func: PrimFunc) -> "IRModule":
        """A module holding ``func`` under its name (TVM's ``IRModule.from_expr``)."""
        return IRModule({func.name: func})

    def __getitem__(self, name: str) -> PrimFunc:
        return self.functions[name]

    def __iter__(self):
        return iter(self.functions.values())

    def __len__(self) -> int:
        return len(self.functions)

    def __str__(self) -> str:
        return "\n\n".join(str(f) for f in self.functions.values())

    __repr__ = __str__

    def script(self) -> str:
        return str(self)
