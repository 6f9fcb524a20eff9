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
        config=CONFIGFILE,
        outdir=lambda w: f"results/reweight/{w.grid}/{w.point}",
        # not read by the command (it reads the grid), listed so that changing them re-runs the job
        settings=reweight_settings,
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
        "recastflow --config {params.config} reweight --grid {wildcards.grid} --point {wildcards.point}"
        " --input {input.selected} --outdir {params.outdir} > {log} 2>&1"


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
        config=CONFIGFILE,
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
        "recastflow --config {params.config} check-reweight --grid {wildcards.grid} --output {output.table}"
        " 2>&1 | tee {log}"
