"""Analysis bundles: loading, their published sources (fetch, cache, mirror) and the catalogue."""
