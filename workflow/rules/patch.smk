# patch: signal yields or published patches -> a validated pyhf PatchSet per grid.


rule patch:
    input:
        sources=grid_inputs,
    output:
        patchset="results/patch/{grid}/patchset.json",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/patch/{grid}.log",
    benchmark:
        "results/benchmarks/patch/{grid}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    container:
        stage_container("patch")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} patch --grid {wildcards.grid} --output {output.patchset} > {log} 2>&1"
