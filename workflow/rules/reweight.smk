# reweight: yields of new hypotheses from a point's selected events and their truth record,
# weighted by r = p1/p0 from a reweighting spec (no new generation, emulation or selection),
# with effective-sample-size diagnostics; and the closure check against directly generated yields.


rule reweight:
    input:
        selected=reweight_source,
        spec=reweight_spec,
    output:
        yields="results/reweight/{grid}/{point}/yields.json",
        diagnostics="results/reweight/{grid}/{point}/diagnostics.json",
    params:
        settings=SETTINGS_ARGS,
        # not read by the command (it reads the grid), listed so that changing them re-runs the job
        hypothesis=reweight_settings,
    log:
        "logs/reweight/{grid}/{point}.log",
    benchmark:
        "results/benchmarks/reweight/{grid}/{point}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    container:
        stage_container("reweight")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} reweight --grid {wildcards.grid} --point {wildcards.point}"
        " --input {input.selected} --yields {output.yields} --diagnostics {output.diagnostics} > {log} 2>&1"


rule check_reweight:
    input:
        yields=reweight_closure_inputs,
    output:
        table=report(
            "results/check/reweight/{grid}.txt",
            caption="../report/check_reweight.rst",
            category="Regression checks",
            subcategory="{grid}",
            labels={"result": "reweighting closure"},
        ),
        json="results/check/reweight/{grid}.json",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/check/reweight/{grid}.log",
    benchmark:
        "results/benchmarks/check/reweight/{grid}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    container:
        stage_container("reweight")
    conda:
        "../../envs/stats.yaml"
    shell:
        # tee: the closure table also reaches the terminal
        "recastflow {params.settings} check-reweight --grid {wildcards.grid} --output {output.table}"
        " --json {output.json} 2>&1 | tee {log}"
