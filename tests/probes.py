"""The common part of the probe plugins that tests write to a temporary folder and load with ``-p``.

Every probe extends ``Hold``, which predicts the initial value at every step and fits nothing, and
overrides the one step it probes (a crash, a sleep, a look for the truth...). The source holds no
braces, so a test may fill fields of its body with ``str.format``.
"""

from __future__ import annotations

import textwrap

HOLD = textwrap.dedent(
    '''
    import gc, inspect, json, os, random, subprocess, sys, time
    import numpy as np
    from tdabench.hookspecs import hookimpl
    from tdabench.simulator import Capabilities, MethodSpec

    class Hold:
        """The initial value held at every step."""
        def __init__(self, config):
            self.config = config
            self.info = dict()
        def fit(self, data):
            return self
        def simulate(self, query):
            return np.repeat(query.initial[:, :, None], query.shape[2], axis=2)
        def fit_info(self):
            return self.info
    '''
)


def probe_source(body: str) -> str:
    """A plugin module's source: ``Hold`` and its imports, then ``body`` (dedented)."""
    return HOLD + textwrap.dedent(body)
