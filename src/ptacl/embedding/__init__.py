"""The embedding of an ECG over its crops, and the file embeddings are stored in.

One layer below everything that embeds: `ptacl.inference` (predict), `ptacl.eval` (evaluate,
embed), `ptacl.export` (the probe it fits) and `ptacl.training` (fine-tune scores) all take a
recording's crops and average over them with `ptacl.embedding.crops`, and `ptacl embed` writes
what `ptacl retrieve` reads through `ptacl.embedding.file`.
"""
