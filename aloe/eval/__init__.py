"""Evaluation of frozen backbones: feature cache, linear probe, k-NN, zero-shot, dense probes,
GridPG and pixel deletion. Every evaluation ends in one small JSON record (see ``aloe.records``)."""
