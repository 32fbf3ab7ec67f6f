"""EvoPress-style search over per-layer compression levels within a budget (issue 28).

Modules: `budget` (params / size / decode budgets), `vocabulary` (the optional fixed first move),
`decode_time` (measured per-layer decode times for decode budgets), `levels` (the level database
and stitching), `fitness` (KL on held-out answers), `evolve` (level-switch mutation, multi-stage
selection), `state` (resumable state), `plan` (plans and the direct cut), `run` (the API),
`report`.

`prunekit.search(model, tokenizer, budget="params=0.8", hours=3)` calls `run.search`: this
package is callable so that the function and the package share the name.
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from prunekit.search.run import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
