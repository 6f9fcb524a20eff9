# generate: particle-level events per point, from Pythia 8 (in chunks, each its own job and
# seed) or from a hand-off manifest (LHE, HepMC3, Delphes ROOT made elsewhere).


rule generate:
    input:
        card=process_card,
        slha=slha_of,
    output:
        events="results/generate/{grid}/{point}/chunk{chunk}.parquet",
    params:
        settings=SETTINGS_ARGS,
        # not read by the command (it reads the grid), listed so that changing them re-runs the job
        statistics=generation_settings,
    log:
        "logs/generate/{grid}/{point}/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/generate/{grid}/{point}/chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    container:
        stage_container("generate")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} generate --grid {wildcards.grid} --point {wildcards.point}"
        " --chunk {wildcards.chunk} --output {output.events} > {log} 2>&1"


rule handoff:
    input:
        files=handoff_inputs,
    output:
        events="results/generate/{grid}/{point}/handoff.parquet",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/generate/{grid}/{point}/handoff.log",
    benchmark:
        "results/benchmarks/generate/{grid}/{point}/handoff.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    container:
        stage_container("generate")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} handoff --grid {wildcards.grid} --point {wildcards.point}"
        " --output {output.events} > {log} 2>&1"
