# emulate: detector emulation (jets, leptons, photons, MET, b-tagging) per chunk, from the
# detector card ({detector}: the card's file stem), once per event sample whatever the number of
# grids that select from it.


rule emulate:
    input:
        events=particle_events,
        card=detector_card,
    output:
        reco="results/emulate/{sample}/{detector}/{point}/chunk{chunk}.parquet",
    params:
        settings=SETTINGS_ARGS,
        grid=emulator_grid,
    log:
        "logs/emulate/{sample}/{detector}/{point}/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/emulate/{sample}/{detector}/{point}/chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        stage_container("emulate")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} emulate --grid {params.grid} --point {wildcards.point}"
        " --chunk {wildcards.chunk} --input {input.events} --output {output.reco} > {log} 2>&1"
