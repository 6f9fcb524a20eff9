# fetch: the bundles' published files (likelihood archives, signal patches) into the shared cache,
# from a mirror folder (RECASTFLOW_MIRROR) or their origin, checked by sha256 and content digest.
# Jobs that read them wait for the bundle's manifest. It is temporary: once every job that needs it
# is done it goes, so a later run with nothing to redo does not fetch at all, and one that does
# finds the files in the cache (no download, no copy).


rule fetch:
    input:
        bundle=lambda w: str(ANALYSES[w.analysis].folder / "analysis.yaml"),
    output:
        manifest=temp("results/fetch/{analysis}.json"),
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/fetch/{analysis}.log",
    benchmark:
        "results/benchmarks/fetch/{analysis}.tsv"
    localrule: True
    resources:
        mem_mb=500,
        runtime=30,
    container:
        stage_container("fetch")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} fetch {wildcards.analysis} --manifest {output.manifest} > {log} 2>&1"
