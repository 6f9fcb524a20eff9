# archive: one reproducibility archive of the finished run, on demand (`snakemake archive`).
#
# The archive goes to archive/, outside results/, because it packs results/ and must not contain
# itself (and has no benchmark: file, whose timing would land in the results it packs). It is not an
# input of `all`, so the default run never builds it.


rule archive:
    input:
        # the same final outputs as rule `all`: the run must be complete before it is packed
        report="results/report/index.html",
        tables=expand("results/limits/{grid}/limits.json", grid=GRIDS),
        checks=CHECK_OUTPUTS,
    output:
        archive="archive/recastflow-run.tar.gz",
    params:
        settings=SETTINGS_ARGS,
        # the file is packed as it is; the grids it names (after any --config override) come as options
        config=CONFIGFILE,
        grids=" ".join(GRIDS),
    log:
        "logs/archive.log",
    resources:
        mem_mb=1000,
        runtime=10,
    container:
        stage_container("archive")
    conda:
        "../../envs/stats.yaml"
    shell:
        # packs results/ (the CLI's default --results)
        "recastflow {params.settings} archive --run-config {params.config} --grids {params.grids}"
        " --output {output.archive} > {log} 2>&1"
