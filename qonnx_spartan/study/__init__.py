"""Design-space studies: one study file, every stage of every configuration a Dask task, results kept in a
content-addressed store (docs/study.md)."""
