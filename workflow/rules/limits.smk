# limits: CLs with expected band per point (upper limits for the configured subset), computed in
# batches of points per job; grid tables and exclusion plots; cabinetry fit plots for selected points.


rule limits_batch:
    input:
        patchset="results/patch/{grid}/patchset.json",
        workspace=workspace_of,
        diagnostics=batch_diagnostics,
    output:
        result=report(
            "results/limits/{grid}/batches/{batch}.json",
            caption="../report/fit_record.rst",
            category="Fit diagnostics",
            subcategory="{grid}",
            labels={"point": "batch {batch}", "file": "fit records (JSON)"},
        ),
    params:
        settings=SETTINGS_ARGS,
        limits=LIMITS_ARGS,
        points=batch_points,
        upper_limits=batch_upper_limits,
    log:
        "logs/limits/{grid}/{batch}.log",
    benchmark:
        "results/benchmarks/limits/{grid}/{batch}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    container:
        stage_container("limits")
    conda:
        "../../envs/stats.yaml"
    shell:
        "OMP_NUM_THREADS={threads} recastflow {params.settings} limits --grid {wildcards.grid} --points {params.points}"
        " --upper-limit-points {params.upper_limits} --diagnostics {input.diagnostics} {params.limits}"
        " --patchset {input.patchset} --output {output.result} > {log} 2>&1"


# the HEPData submission of a grid's table job, by output name (rule all asks for them too, so that a
# deleted one is made again)
HEPDATA_FILES = ("hepdata/submission.yaml", "hepdata/limits.yaml", "hepdata/contour_obs.yaml", "hepdata/contour_exp.yaml")


rule limits_table:
    input:
        batches=batch_results,
    output:
        table="results/limits/{grid}/limits.json",
        csv=report(
            "results/limits/{grid}/limits.csv",
            caption="../report/limits_table.rst",
            category="Exclusion",
            subcategory="{grid}",
            labels={"result": "limit table (CSV)"},
        ),
        plot=report(
            "results/limits/{grid}/exclusion.png",
            caption="../report/exclusion.rst",
            category="Exclusion",
            subcategory="{grid}",
            labels={"result": "exclusion plot"},
        ),
        pdf="results/limits/{grid}/exclusion.pdf",
        # HEPData submission (limits table, observed and expected contours): the data files sit next to
        # submission.yaml, which names them
        hepdata_submission=f"results/limits/{{grid}}/{HEPDATA_FILES[0]}",
        hepdata_limits=f"results/limits/{{grid}}/{HEPDATA_FILES[1]}",
        hepdata_contour_obs=f"results/limits/{{grid}}/{HEPDATA_FILES[2]}",
        hepdata_contour_exp=f"results/limits/{{grid}}/{HEPDATA_FILES[3]}",
    params:
        settings=SETTINGS_ARGS,
        table=TABLE_ARGS,
    log:
        "logs/limits/{grid}/table.log",
    benchmark:
        "results/benchmarks/limits/{grid}/table.tsv"
    resources:
        mem_mb=1500,
        runtime=10,
    container:
        stage_container("limits")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} table --grid {wildcards.grid} --inputs {input.batches} {params.table}"
        " --json {output.table} --csv {output.csv} --plot {output.plot} --plot-pdf {output.pdf}"
        " --hepdata {output.hepdata_submission} {output.hepdata_limits} {output.hepdata_contour_obs}"
        " {output.hepdata_contour_exp} > {log} 2>&1"


rule fitplots:
    input:
        patchset="results/patch/{grid}/patchset.json",
        workspace=workspace_of,
    output:
        plots=report(
            directory("results/limits/{grid}/fitplots/{point}"),
            patterns=["{plot}.png"],
            caption="../report/fitplots.rst",
            category="Fit diagnostics",
            subcategory="{grid}",
            # file names are "<grid>-<point>_<plot>.png": the label keeps <plot>
            labels=lambda w: {"point": w.point, "file": w.plot.removeprefix(f"{w.grid}-{w.point}_")},
        ),
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/limits/{grid}/fitplots_{point}.log",
    benchmark:
        "results/benchmarks/fitplots/{grid}/{point}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
    container:
        stage_container("limits")
    conda:
        "../../envs/stats.yaml"
    shell:
        "OMP_NUM_THREADS={threads} recastflow {params.settings} fitplots --grid {wildcards.grid} --point {wildcards.point}"
        " --patchset {input.patchset} --outdir {output.plots} > {log} 2>&1"
