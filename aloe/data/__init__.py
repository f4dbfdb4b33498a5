"""Data stages: alignment shards (img2dataset), key subsets, evaluation datasets in one shard
format, the embedded synthetic world, and the webdataset loaders that read them.

Entry points (plain functions; the Snakemake rules call them with config values):

- ``img2dataset_stage.download_alignment_set``: url list -> shards + ``summary.json``;
- ``synthetic_world.make_synthetic_world`` / ``download_synthetic_alignment_set``: offline world;
- ``subsets.make_key_splits`` / ``materialize_subset``: held-out split and nested subsets;
- ``eval_datasets.prepare_eval_dataset``: evaluation datasets in the format of ``shards`` (from
  torchvision, manual layouts in ``manual_datasets`` or class folders in ``folder_datasets``);
- ``align_loader.AlignmentLoader`` and ``eval_loader.EvalLoader``: the loaders;
- ``tario.iter_shard`` (with ``shard_index`` and ``damage``): every reader's way into a shard,
  samples in key order, damaged samples counted once by key against the shard's index;
- ``zero_shot``: class names and prompt templates.
"""
