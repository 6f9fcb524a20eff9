# check: results against each analysis bundle's reference values; a failure fails the run.


rule check:
    input:
        tables=analysis_tables,
    output:
        report=report(
            "results/check/{analysis}.txt",
            caption="../report/check.rst",
            category="Regression checks",
            subcategory="{analysis}",
            labels={"result": "check table"},
        ),
        table="results/check/{analysis}.json",
    params:
        config=CONFIGFILE,
    log:
        "logs/check/{analysis}.log",
    resources:
        mem_mb=500,
        runtime=5,
    container:
        stage_container("check")
    conda:
        "../../envs/stats.yaml"
    shell:
        # tee: the table of value, reference and tolerance also reaches the terminal
        "recastflow --config {params.config} check --analysis {wildcards.analysis} --results {input.tables}"
        " --output {output.report} 2>&1 | tee {log}"
