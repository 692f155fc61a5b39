"""Length-grouped training batches: little padding, and batches that change from epoch to epoch.

`--batching grouped` (the default on a CPU) pads each batch to its longest example, so it wants
each batch to hold examples of about the same length. transformers' `group_by_length` sorts the
data in random mega-batches of min(50, n / 4) batches, so on a dataset of a few hundred examples
each mega-batch is a random quarter of it: on the throughput benchmark's data, padding added 24%
to the real tokens. `LengthBucketSampler` sorts each epoch in buckets of 50 batches (the whole
dataset below 400 examples of 8), longest first, by length times a random factor within ±10%
(the padding noise of AllenNLP's bucket sampler): padding adds 11%, and batches still mix
differently from one epoch to the next (33% of the pairs of examples that share a batch do so
again in the next epoch; 96% with an exact sort, 16% with transformers' sampler). The batches are
then shuffled, the one holding the longest example placed first (if memory runs out, it does so
at once) and a short remainder, the shortest examples, last (the DataLoader cuts the order into
batches, so it must not fall in the middle).

    python -m benchmarks.train_throughput   # grouped vs every example padded to max_length
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from datasets import Dataset
from torch.utils.data import Sampler
from trl import SFTTrainer

PADDING_NOISE = 0.1
BUCKET_BATCHES = 50


class LengthBucketSampler(Sampler[int]):
    """Indices of `lengths` in an order whose consecutive runs of `batch_size` have similar lengths.

    Randomness comes from torch's global generator, which the Trainer seeds: every process of a
    multi-process run draws the same order and takes its own batches from it."""

    def __init__(
        self, lengths: list[int], batch_size: int, noise: float = PADDING_NOISE, bucket: int = BUCKET_BATCHES
    ) -> None:
        self.lengths = torch.tensor(lengths, dtype=torch.float)
        self.batch_size = batch_size
        self.noise = noise
        self.bucket_size = bucket * batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return (index for batch in self.batches() for index in batch)

    def batches(self) -> list[list[int]]:
        """One epoch's batches, in the order they are trained on."""
        n = len(self.lengths)
        shuffled = torch.randperm(n)
        keys = self.lengths * (1 + self.noise * (2 * torch.rand(n) - 1))
        batches = []
        for start in range(0, n, self.bucket_size):
            bucket = shuffled[start : start + self.bucket_size]
            bucket = bucket[torch.argsort(keys[bucket], descending=True)].tolist()
            batches += [bucket[i : i + self.batch_size] for i in range(0, len(bucket), self.batch_size)]
        remainder = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        if batches:
            longest = max(range(len(batches)), key=lambda i: self.lengths[batches[i]].max().item())
            batches[0], batches[longest] = batches[longest], batches[0]
        return batches + remainder


class GroupedSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer whose `group_by_length` sampling is a `LengthBucketSampler`."""

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not isinstance(dataset, Dataset):
            return super()._get_train_sampler(train_dataset)
        return LengthBucketSampler([len(ids) for ids in dataset["input_ids"]], self.args.train_batch_size)
