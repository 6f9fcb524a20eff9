# adaptive: an adaptive scan (config 'adaptive', recastflow run --scan FILE --adaptive). Each point's events
# are generated chunk by chunk; after each chunk (from the minimum on) a decision job selects the chunks so
# far, computes CLs as selected and scaled by its MC-statistical uncertainty, and says whether the verdict
# is decided. A round's points decided, the round job splits the cells of the plane whose corners disagree
# and names the next round's points. Both are checkpoints: the DAG grows as they finish.


rule adaptive_spectrum:
    input:
        scan=adaptive_scan_file,
    output:
        slha=ADAPTIVE_OUT.replace("{name}", "spectrum.slha"),
    params:
        settings=SETTINGS_ARGS,
        adaptive=ADAPTIVE_ARGS,
    log:
        "logs/adaptive/{point}/spectrum.log",
    localrule: True
    container:
        stage_container("adaptive")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} adaptive {params.adaptive} spectrum --point {wildcards.point}"
        " --output {output.slha} > {log} 2>&1"


rule adaptive_generate:
    input:
        slha=ADAPTIVE_OUT.replace("{name}", "spectrum.slha"),
        card=lambda w: config["adaptive"]["process"],
    output:
        events=temp(ADAPTIVE_OUT.replace("{name}", "generate/chunk{chunk}.parquet")),
    params:
        settings=SETTINGS_ARGS,
        adaptive=ADAPTIVE_ARGS,
    log:
        "logs/adaptive/{point}/generate{chunk}.log",
    benchmark:
        "results/benchmarks/adaptive/generate/{point}/chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    container:
        stage_container("adaptive")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} adaptive {params.adaptive} generate --point {wildcards.point}"
        " --chunk {wildcards.chunk} --slha {input.slha} --output {output.events} > {log} 2>&1"


rule adaptive_emulate:
    input:
        events=ADAPTIVE_OUT.replace("{name}", "generate/chunk{chunk}.parquet"),
        card=lambda w: config["adaptive"]["detector"],
    output:
        reco=ADAPTIVE_OUT.replace("{name}", "emulate/chunk{chunk}.parquet"),
    params:
        settings=SETTINGS_ARGS,
        adaptive=ADAPTIVE_ARGS,
    log:
        "logs/adaptive/{point}/emulate{chunk}.log",
    benchmark:
        "results/benchmarks/adaptive/emulate/{point}/chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    container:
        stage_container("adaptive")
    conda:
        "../../envs/frontend.yaml"
    shell:
        "recastflow {params.settings} adaptive {params.adaptive} emulate --point {wildcards.point}"
        " --chunk {wildcards.chunk} --input {input.events} --output {output.reco} > {log} 2>&1"


checkpoint adaptive_decide:
    input:
        reco=adaptive_chunks,
        selection=adaptive_selection,
        published=adaptive_published,
    output:
        decision=ADAPTIVE_OUT.replace("{name}", "decision{chunk}.json"),
    params:
        settings=SETTINGS_ARGS,
        adaptive=ADAPTIVE_ARGS,
        fit=FIT_ARGS,
    log:
        "logs/adaptive/{point}/decision{chunk}.log",
    benchmark:
        "results/benchmarks/adaptive/decide/{point}/decision{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    container:
        stage_container("adaptive")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} adaptive {params.adaptive} decide {params.fit} --point {wildcards.point}"
        " --output {output.decision} {input.reco} > {log} 2>&1"


checkpoint adaptive_round:
    input:
        earlier=adaptive_earlier_rounds,
        decisions=adaptive_round_decisions,
    output:
        round=ADAPTIVE_ROUND,
    params:
        settings=SETTINGS_ARGS,
        adaptive=ADAPTIVE_ARGS,
    log:
        "logs/adaptive/round{round}.log",
    localrule: True
    container:
        stage_container("adaptive")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} adaptive {params.adaptive} round --round {wildcards.round}"
        " --earlier {input.earlier} --decisions {input.decisions} --output {output.round} > {log} 2>&1"


rule adaptive_summary:
    input:
        rounds=adaptive_all_rounds,
        decisions=adaptive_all_decisions,
    output:
        **ADAPTIVE_SUMMARY,
    params:
        settings=SETTINGS_ARGS,
        adaptive=ADAPTIVE_ARGS,
    log:
        "logs/adaptive/summary.log",
    benchmark:
        "results/benchmarks/adaptive/summary.tsv"
    container:
        stage_container("adaptive")
    conda:
        "../../envs/stats.yaml"
    shell:
        "recastflow {params.settings} adaptive {params.adaptive} summary --rounds {input.rounds}"
        " --decisions {input.decisions} --json {output.scan} --csv {output.table} --plot {output.plot} > {log} 2>&1"
