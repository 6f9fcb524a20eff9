# limits: CLs with expected band per point (upper limits for the configured subset),
# grid tables and exclusion plots, cabinetry fit plots for selected points.


rule limits_point:
    input:
        patchset="results/patch/{grid}/patchset.json",
        workspace=workspace_of,
    output:
        result="results/limits/{grid}/points/{point}.json",
    params:
        config=CONFIGFILE,
        upper_limit=upper_limit_flag,
    log:
        "logs/limits/{grid}/{point}.log",
    benchmark:
        "results/benchmarks/limits/{grid}/{point}.tsv"
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/stats.yaml"
    shell:
        "OMP_NUM_THREADS=1 recastflow --config {params.config} limits --grid {wildcards.grid} --point {wildcards.point}"
        " --patchset {input.patchset} --output {output.result} {params.upper_limit} > {log} 2>&1"


rule limits_table:
    input:
        points=point_results,
    output:
        table="results/limits/{grid}/limits.json",
        csv="results/limits/{grid}/limits.csv",
        plot="results/limits/{grid}/exclusion.png",
    params:
        config=CONFIGFILE,
    log:
        "logs/limits/{grid}/table.log",
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow --config {params.config} table --grid {wildcards.grid} --inputs {input.points}"
        " --outdir results/limits/{wildcards.grid} > {log} 2>&1"


rule fitplots:
    input:
        patchset="results/patch/{grid}/patchset.json",
        workspace=workspace_of,
    output:
        plots=directory("results/limits/{grid}/fitplots/{point}"),
    params:
        config=CONFIGFILE,
    log:
        "logs/limits/{grid}/fitplots_{point}.log",
    benchmark:
        "results/benchmarks/fitplots/{grid}/{point}.tsv"
    conda:
        "../../envs/stats.yaml"
    shell:
        "OMP_NUM_THREADS=1 recastflow --config {params.config} fitplots --grid {wildcards.grid} --point {wildcards.point}"
        " --patchset {input.patchset} --outdir {output.plots} > {log} 2>&1"
