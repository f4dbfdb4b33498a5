"""Attribution methods with one signature: fn(images, target_classes) -> (N, [C,] H, W) maps.

``bcos``: the B-cos student's own W(x)·x (foundation ``explain``); ``captum_methods``:
Integrated Gradients and LIME on any callable classifier; ``chefercam``: gradient-weighted
attention rollout for HF ViT / DINOv3 teachers.
"""

from aloe.eval.attributions.bcos import bcos_attribution
from aloe.eval.attributions.captum_methods import integrated_gradients, lime
from aloe.eval.attributions.chefercam import chefercam

__all__ = ["bcos_attribution", "chefercam", "integrated_gradients", "lime"]


def make_attribution_fn(method: str, classifier, **options):
    """fn(images, classes) for ``method`` in METHODS on a ``ProbedClassifier``.

    ``bcos`` needs a B-cos student backbone, ``chefercam`` a ViT / DINOv3 teacher;
    ``ig`` takes n_steps / internal_batch_size;
    ``lime`` takes block / n_samples / seed.
    """
    if method == "bcos":
        return lambda images, classes: bcos_attribution(classifier.backbone, classifier.weight, images, classes)
    if method == "chefercam":
        return lambda images, classes: chefercam(classifier.backbone, classifier.weight, images, classes)
    if method == "ig":
        return lambda images, classes: integrated_gradients(classifier, images, classes, **options)
    if method == "lime":
        return lambda images, classes: lime(classifier, images, classes, **options)
    raise ValueError(f"unknown attribution method {method!r}; available: {METHODS}")


METHODS = ("bcos", "chefercam", "ig", "lime")
__all__ += ["METHODS", "make_attribution_fn"]
