"""The run state as a numba StructRef: one reference-counted object instead of a tuple of ~30
arrays, so passing it between kernels costs one reference-count update, not one per array."""
from numba import njit, types
from numba.experimental import structref

FIELDS = ("R", "RF", "TOK", "KVH", "RH", "I", "IF", "BATCH", "KB", "BH", "CPU", "HT", "P", "PF",
          "BETA", "RP", "SCODES", "SWEIGHTS", "SC", "SCF", "EVH", "WQ", "SLOG", "SEGS", "ARENA",
          "PXT", "PXA", "CE", "CL", "CLF", "AFFINITY", "ROUTES", "CAND",
          "DSCODES", "DSWEIGHTS", "SCORE_FN", "ADMIT_FN", "PRIO_FN")


@structref.register
class KernelStateType(types.StructRef):
    """numba type of KernelState (field types come from the arrays it is built from)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class KernelState(structref.StructRefProxy):
    """Python-side handle of the kernel state (fields are read through ``engine.State``)."""


structref.define_constructor(KernelState, KernelStateType, FIELDS)
structref.define_boxing(KernelStateType, KernelState)


@njit(cache=True)
def pack_state(R, RF, TOK, KVH, RH, I, IF, BATCH, KB, BH, CPU, HT, P, PF, BETA, RP, SCODES,
               SWEIGHTS, SC, SCF, EVH, WQ, SLOG, SEGS, ARENA, PXT, PXA, CE, CL, CLF, AFFINITY,
               ROUTES, CAND, DSCODES, DSWEIGHTS, SCORE_FN, ADMIT_FN, PRIO_FN):
    """Wrap the arrays (shared, not copied) and the code-policy functions (first-class
    functions of the fixed signatures in kernels/codefn.py) into one KernelState."""
    return KernelState(R, RF, TOK, KVH, RH, I, IF, BATCH, KB, BH, CPU, HT, P, PF, BETA, RP,
                       SCODES, SWEIGHTS, SC, SCF, EVH, WQ, SLOG, SEGS, ARENA, PXT, PXA, CE, CL,
                       CLF, AFFINITY, ROUTES, CAND, DSCODES, DSWEIGHTS,
                       SCORE_FN, ADMIT_FN, PRIO_FN)
