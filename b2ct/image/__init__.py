"""VM images on the hypervisors: `b2ct image stage` copies one into every host's local cache by a fan-out
tree (hosts that have it serve the next ones, rsync over ssh), verifying it by sha256 everywhere."""
