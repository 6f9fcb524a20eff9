# report: one self-contained HTML page with plots, tables and checks.


rule report:
    input:
        tables=expand("results/limits/{grid}/limits.json", grid=GRIDS),
        plots=expand("results/limits/{grid}/exclusion.png", grid=GRIDS),
        checks=CHECK_OUTPUTS,
        yield_checks=YIELD_CHECK_OUTPUTS,
        cutflows=front_end_cutflows,
        reweight=reweight_diagnostics,
        reweight_checks=REWEIGHT_CHECK_OUTPUTS,
        fitplots=[f"results/limits/{g}/fitplots/{p}" for g, p in FIT_PLOTS],
        # files the report reads beside the .txt tables it is given: without them as inputs, a
        # missing yield plot would be left out of the page silently instead of being made again
        beside=[f.removesuffix(".txt") + ".json" for f in CHECK_OUTPUTS + YIELD_CHECK_OUTPUTS + REWEIGHT_CHECK_OUTPUTS]
        + [f.removesuffix(".txt") + ".png" for f in YIELD_CHECK_OUTPUTS],
    output:
        html=report(
            "results/report/index.html",
            caption="../report/recastflow_report.rst",
            category="recastflow report",
            labels={"result": "HTML page"},
        ),
    params:
        config=CONFIGFILE,
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    container:
        stage_container("report")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow --config {params.config} report --tables {input.tables} --checks {input.checks}"
        " --fitplots {input.fitplots} --yield-checks {input.yield_checks} --cutflows {input.cutflows}"
        " --reweight {input.reweight} --reweight-checks {input.reweight_checks} --output {output.html} > {log} 2>&1"
