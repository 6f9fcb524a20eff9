# report: one self-contained HTML page with plots, tables and checks, the catalogue of analysis bundles, and
# the verdict table of the run.


rule catalogue:
    input:
        bundles=sorted(Path(config["analyses_dir"]).glob("*/analysis.yaml")),
        grids=sorted(Path(config["signals_dir"]).glob("*.yaml")),
    output:
        json="results/report/catalogue.json",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/catalogue.log",
    benchmark:
        "results/benchmarks/catalogue.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    container:
        stage_container("report")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} catalogue --json {output.json} > {log} 2>&1"


rule report:
    input:
        # every file the page is made from is named here and passed to the command: it reads nothing else
        tables=expand("results/limits/{grid}/limits.json", grid=GRIDS),
        plots=expand("results/limits/{grid}/exclusion.png", grid=GRIDS),
        checks=CHECK_JSONS,
        yield_checks=YIELD_CHECK_JSONS,
        yield_plots=YIELD_CHECK_PLOTS,
        yield_summaries=YIELD_CHECK_SUMMARY_PLOTS,
        cutflows=front_end_cutflows,
        reweight=reweight_diagnostics,
        reweight_checks=REWEIGHT_CHECK_JSONS,
        fitplots=[f"results/limits/{g}/fitplots/{p}" for g, p in FIT_PLOTS],
        catalogue="results/report/catalogue.json",
    output:
        html=report(
            "results/report/index.html",
            caption="../report/recastflow_report.rst",
            category="recastflow report",
            labels={"result": "HTML page"},
        ),
    params:
        settings=SETTINGS_ARGS,
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
        "recastflow {params.settings} report --tables {input.tables} --exclusion-plots {input.plots}"
        " --checks {input.checks} --fitplots {input.fitplots} --yield-checks {input.yield_checks}"
        " --yield-plots {input.yield_plots} --yield-summaries {input.yield_summaries} --cutflows {input.cutflows} --reweight {input.reweight}"
        " --reweight-checks {input.reweight_checks} --catalogue {input.catalogue} --output {output.html} > {log} 2>&1"


# The verdict per model point over every grid of the run (analysis and workspace): the trusted result with
# the smallest expected CLs decides. Printed at the end of every successful run (Snakefile onsuccess).
rule verdicts:
    input:
        tables=expand("results/limits/{grid}/limits.json", grid=GRIDS),
    output:
        json="results/summary/verdicts.json",
        text="results/summary/verdicts.txt",
        csv=report(
            "results/summary/verdicts.csv",
            caption="../report/verdicts.rst",
            category="Verdicts",
            labels={"result": "verdict per point (CSV)"},
        ),
    params:
        settings=SETTINGS_ARGS,
        table=TABLE_ARGS,
    log:
        "logs/summary/verdicts.log",
    benchmark:
        "results/benchmarks/summary/verdicts.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    container:
        stage_container("report")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} verdicts --tables {input.tables} {params.table}"
        " --json {output.json} --text {output.text} --csv {output.csv} > {log} 2>&1"

