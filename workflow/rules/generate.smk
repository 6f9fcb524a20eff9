# generate: particle-level events per point of an event sample, from Pythia 8 (in chunks, each its
# own job and seed) or from a hand-off manifest (LHE, HepMC3, Delphes ROOT made elsewhere). Grids
# sharing a sample (events.sample) share these jobs; {params.grid} is the grid whose settings make them.


rule generate:
    input:
        card=process_card,
        slha=slha_of,
    output:
        events="results/generate/{sample}/{point}/chunk{chunk}.parquet",
    params:
        settings=SETTINGS_ARGS,
        grid=generator_grid,
        # not read by the command (it reads the grid), listed so that changing them re-runs the job
        statistics=generation_settings,
    log:
        "logs/generate/{sample}/{point}/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/generate/{sample}/{point}/chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    container:
        stage_container("generate")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} generate --grid {params.grid} --point {wildcards.point}"
        " --chunk {wildcards.chunk} --output {output.events} > {log} 2>&1"


rule handoff:
    input:
        files=handoff_inputs,
    output:
        events="results/generate/{sample}/{point}/handoff.parquet",
    params:
        settings=SETTINGS_ARGS,
        grid=generator_grid,
    log:
        "logs/generate/{sample}/{point}/handoff.log",
    benchmark:
        "results/benchmarks/generate/{sample}/{point}/handoff.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    container:
        stage_container("generate")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} handoff --grid {params.grid} --point {wildcards.point}"
        " --output {output.events} > {log} 2>&1"
