"""Plain-loop versions of convolution and pooling: the readable oracle.

Every output entry is computed by an explicit loop over windows, exactly as the notes
describe it (Key Equation 15: ``y_i = f . v_i + f_0``). Slow on purpose and never imported by
the fast path; the tests compare it with PyTorch (a reference nobody tests is not a
reference) and then use it as the oracle for the fast path's chunking and odd shapes.
``convscope.explain`` builds its step-by-step traces from the same loops.
"""

from __future__ import annotations

import numpy as np

# ---- convolution (section owned by the conv tests) ----

# ---- pooling (section owned by the pool implementation) ----
