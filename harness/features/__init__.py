"""Features: from an encoder's hidden states to the token sequences an aggregator reads.

Owns the extractors (``--extract`` names -> layers and a view), the view math (one layer, mean,
Norm-Avg, the learned stack), the feature store (one forward per text, every view from it), the
on-disk feature cache and its shard format, the disk plan made before encoding, the feature
sources of a run (cached stores, or the encoder in the loop) and the torchrun helpers that share
encoding and gather negatives.  Nothing here imports torch at import time.
"""
