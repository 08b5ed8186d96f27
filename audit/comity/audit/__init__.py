"""The transparency log: RFC 6962 tree, proofs, storage, checkpoints and notes, witnessing, verification."""
