# emulate: detector emulation (jets, leptons, photons, MET, b-tagging) per chunk, from the
# grid's detector card.


rule emulate:
    input:
        events=particle_events,
        card=detector_card,
    output:
        reco="results/emulate/{grid}/{point}/chunk{chunk}.parquet",
    params:
        settings=SETTINGS_ARGS,
    log:
        "logs/emulate/{grid}/{point}/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/emulate/{grid}/{point}/chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    container:
        stage_container("emulate")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} emulate --grid {wildcards.grid} --point {wildcards.point}"
        " --chunk {wildcards.chunk} --input {input.events} --output {output.reco} > {log} 2>&1"
