"""The train stage: training data from pinned gold tables, the networks, distributed training
with Horovod, evaluation against baselines."""
