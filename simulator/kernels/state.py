"""The run state: its field list, written once, and the two forms built from it.

``State`` (a namedtuple) is what the engine allocates and what tests and the final read-out use;
``KernelState`` is the same arrays as a numba StructRef: one reference-counted object instead of
a tuple of ~40 arrays, so passing it between kernels costs one reference-count update, not one
per array.  Every kernel entry point takes it first (``st``).
"""
from collections import namedtuple

from numba import njit, types
from numba.experimental import structref

FIELDS = ("R", "RF", "TOK", "KVH", "RH", "I", "IF", "BATCH", "KB", "BH", "CPU", "HT", "P", "PF",
          "BETA", "RP", "SCODES", "SWEIGHTS", "SC", "SCF", "EVH", "WQ", "SLOG", "SEGS", "ARENA",
          "PXT", "PXA", "CE", "CL", "CLF", "AFFINITY", "ROUTES", "CAND",
          "DSCODES", "DSWEIGHTS", "GW", "TEN", "GWF", "SCORE_FN", "ADMIT_FN", "PRIO_FN")
"""Names of the state's arrays (packed layouts: kernels/layout.py) and code-policy functions
(kernels/codefn.py signatures), in the order ``State`` and ``KernelState`` hold them."""

State = namedtuple("State", FIELDS)
State.__doc__ = ("Every array of one run (packed layouts: simulator/kernels/layout.py) and the "
                 "code-policy functions (built-in stand-ins when unused).")


@structref.register
class KernelStateType(types.StructRef):
    """numba type of KernelState (field types come from the arrays it is built from)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class KernelState(structref.StructRefProxy):
    """Python-side handle of the kernel state (fields are read through ``State``)."""


structref.define_constructor(KernelState, KernelStateType, FIELDS)
structref.define_boxing(KernelStateType, KernelState)


@njit(cache=True)
def pack_state(*fields):
    """Wrap a ``State``'s fields (``pack_state(*state)``: the arrays, shared, not copied, and the
    code-policy functions) into one KernelState, in ``FIELDS`` order."""
    return KernelState(*fields)
