# select: the bundle's declarative selection on all chunks of a point: cutflows, yields per
# region and bin (the input of `patch`), and the selected events with their truth record.


rule select:
    input:
        reco=reco_events,
        selection=selection_file,
    output:
        yields="results/select/{grid}/{point}/yields.json",
        cutflow="results/select/{grid}/{point}/cutflow.json",
        selected="results/select/{grid}/{point}/selected.parquet",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/select/{grid}/{point}.log",
    benchmark:
        "results/benchmarks/select/{grid}/{point}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    container:
        stage_container("select")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} select --grid {wildcards.grid} --point {wildcards.point}"
        " --inputs {input.reco} --yields {output.yields} --cutflow {output.cutflow}"
        " --selected {output.selected} > {log} 2>&1"

