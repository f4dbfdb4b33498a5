"""Evaluation of frozen backbones: feature cache, linear probe, k-NN, zero-shot, dense probes,
GridPG and pixel deletion. Every evaluation ends in one small JSON record (see ``aloe.records``);
the report's explanation grid gets its panels here too (``explanation_panels``)."""
