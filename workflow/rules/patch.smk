# patch: signal yields or published patches -> a validated pyhf PatchSet per grid.


rule patch:
    input:
        sources=grid_inputs,
    output:
        patchset="results/patch/{grid}/patchset.json",
    params:
        config=CONFIGFILE,
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
        "recastflow --config {params.config} patch --grid {wildcards.grid} --output {output.patchset} > {log} 2>&1"
