"""Attribution methods with one signature: fn(images, target_classes) -> (N, [C,] H, W) maps.

``bcos``: the B-cos student's own W(x)·x (foundation ``explain``); ``captum_methods``:
Integrated Gradients and LIME on any callable classifier; ``chefercam``: gradient-weighted
attention rollout; ``legrad``: layer-wise gradients w.r.t. attention maps. The post-hoc methods
(ig, lime, chefercam, legrad) run on teachers and on B-cos students alike. ``lrp``: CP-LRP (the ALOE
authors' "AttnLRP" on HF teachers) and full AttnLRP, for the HF teachers only (rules: ``lrp_rules``).
"""

from aloe.eval.attributions.bcos import bcos_attribution
from aloe.eval.attributions.captum_methods import integrated_gradients, lime
from aloe.eval.attributions.chefercam import chefercam
from aloe.eval.attributions.legrad import legrad
from aloe.eval.attributions.lrp import attnlrp, cp_lrp

__all__ = ["attnlrp", "bcos_attribution", "chefercam", "cp_lrp", "integrated_gradients", "legrad", "lime"]


def make_attribution_fn(method: str, classifier, **options):
    """fn(images, classes) for ``method`` in METHODS on a ``ProbedClassifier``.

    ``bcos`` needs a B-cos student backbone; ``chefercam`` a backbone with a [CLS] token (not
    SigLIP); ``legrad`` takes layer_index / queries / readout / normalize / pooler_attention /
    correction / correction_threshold / minmax / layerwise (defaults: legrad-torch 1.1's maths;
    ``aloe.eval.attributions.legrad.EARLIER_DEFAULTS``: aloe's earlier variant); ``ig`` takes
    n_steps / internal_batch_size;
    ``lime`` takes block / n_samples / seed; ``cp_lrp`` and ``attnlrp`` (HF teachers only) take
    epsilon / batch_size.
    """
    if method == "bcos":
        return lambda images, classes: bcos_attribution(classifier.backbone, classifier.weight, images, classes)
    if method == "chefercam":
        return lambda images, classes: chefercam(classifier.backbone, classifier.weight, images, classes)
    if method == "legrad":
        return lambda images, classes: legrad(classifier.backbone, classifier.weight, images, classes, **options)
    if method == "cp_lrp":
        return lambda images, classes: cp_lrp(classifier.backbone, classifier.weight, images, classes, **options)
    if method == "attnlrp":
        return lambda images, classes: attnlrp(classifier.backbone, classifier.weight, images, classes, **options)
    if method == "ig":
        return lambda images, classes: integrated_gradients(classifier, images, classes, **options)
    if method == "lime":
        return lambda images, classes: lime(classifier, images, classes, **options)
    raise ValueError(f"unknown attribution method {method!r}; available: {METHODS}")


METHODS = ("attnlrp", "bcos", "chefercam", "cp_lrp", "ig", "legrad", "lime")
__all__ += ["METHODS", "make_attribution_fn"]
