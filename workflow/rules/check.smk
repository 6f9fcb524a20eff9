# check: results against each analysis bundle's reference values, and front-end signal yields
# against the bundle's published signal patches (check_yields); a failure fails the run.
# A failed yield check does not stop the run at once: check_yields writes its table, JSON and plot
# either way (the table ends with CHECK FAILED, the plot's panel says FAIL), the other points' limits
# and the report (which shows the failure) are made, and check_yields_verdict, last, fails the run.


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
        settings=SETTINGS_ARGS,
        # the run's grids: references of grids outside the run are not checked
        grids=" ".join(GRIDS),
    log:
        "logs/check/{analysis}.log",
    benchmark:
        "results/benchmarks/check/{analysis}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    container:
        stage_container("check")
    conda:
        "../../envs/stats.yaml"
    shell:
        # tee: the table of value, reference and tolerance also reaches the terminal
        "recastflow {params.settings} check --analysis {wildcards.analysis} --results {input.tables}"
        " --grids {params.grids} --output {output.report} --json {output.table} 2>&1 | tee {log}"


rule check_yields:
    input:
        yields=grid_yields,
        # ATLAS's published signal patches and the workspace, in the fetch cache
        published=fetched_of,
    output:
        table=report(
            "results/check/yields/{grid}.txt",
            caption="../report/check_yields.rst",
            category="Regression checks",
            subcategory="{grid}",
            labels={"result": "signal-yield check"},
        ),
        json="results/check/yields/{grid}.json",
        plot=report(
            "results/check/yields/{grid}.png",
            caption="../report/check_yields.rst",
            category="Regression checks",
            subcategory="{grid}",
            labels={"result": "signal-yield plot"},
        ),
        pdf="results/check/yields/{grid}.pdf",
        summary=report(
            "results/check/yields/{grid}.summary.png",
            caption="../report/check_yields.rst",
            category="Regression checks",
            subcategory="{grid}",
            labels={"result": "signal-yield ratio over the plane"},
        ),
        summary_pdf="results/check/yields/{grid}.summary.pdf",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/check/yields/{grid}.log",
    benchmark:
        "results/benchmarks/check/yields/{grid}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    container:
        stage_container("check")
    conda:
        "../../envs/stats.yaml"
    shell:
        # --record-failure: the outputs are written and the job succeeds when points fail; the verdict fails the run
        "recastflow {params.settings} check-yields --grid {wildcards.grid} --inputs {input.yields}"
        " --output {output.table} --json {output.json} --plot {output.plot} --plot-pdf {output.pdf}"
        " --summary-plot {output.summary} --summary-plot-pdf {output.summary_pdf} --record-failure 2>&1 | tee {log}"


rule check_yields_verdict:
    input:
        check="results/check/yields/{grid}.json",
        # after everything else of the run: a failed yield check must not keep the other results from being made
        report="results/report/index.html",
    output:
        passed="results/check/yields/{grid}.passed",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/check/yields/{grid}.verdict.log",
    resources:
        mem_mb=200,
        runtime=2,
    container:
        stage_container("check")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} check-yields-verdict --check {input.check} --output {output.passed} 2>&1 | tee {log}"


# check_models: the technical validation vectors of the ML models of config/models/<bundle>/
# (selection.yaml); a score that moved beyond its tolerance fails the run.


rule check_models:
    input:
        files=model_check_inputs,
    output:
        table=report(
            "results/check/models/{bundle}.txt",
            caption="../report/check.rst",
            category="Regression checks",
            subcategory="ML models",
            labels={"result": "validation vectors", "bundle": "{bundle}"},
        ),
        json="results/check/models/{bundle}.json",
    params:
        selection=lambda w: f"config/models/{w.bundle}/selection.yaml",
    log:
        "logs/check/models/{bundle}.log",
    benchmark:
        "results/benchmarks/check/models/{bundle}.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    container:
        stage_container("check")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow model-check --selection {params.selection} --output {output.table} --json {output.json}"
        " 2>&1 | tee {log}"
