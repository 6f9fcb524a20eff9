# recastflow: reinterpret published LHC analyses with their preserved likelihoods.
#
# This file is the table of contents. Each stage lives in workflow/rules/<stage>.smk
# and every action is a call of the `recastflow` CLI. Outputs go to results/<stage>/.
#
#   make run                            the default run (config/config.yaml), i.e.
#   snakemake --workflow-profile workflow/profiles/default --cores 2
#   snakemake --configfile my.yaml ...  another run configuration
#   snakemake --report report.html      one self-contained HTML report of the last run

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/emulate.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/reweight.smk"
include: "workflow/rules/patch.smk"
include: "workflow/rules/limits.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/archive.smk"
include: "workflow/rules/adaptive.smk"


rule all:
    default_target: True
    input:
        # a run of grids; an adaptive scan alone (config 'adaptive' without 'grids') has only its own results
        report=["results/report/index.html"] if GRIDS else [],
        verdicts=["results/summary/verdicts.txt"] if GRIDS else [],
        tables=expand("results/limits/{grid}/limits.json", grid=GRIDS),
        checks=CHECK_OUTPUTS,
        yield_checks=YIELD_CHECK_OUTPUTS,
        reweight_checks=REWEIGHT_CHECK_OUTPUTS,
        model_checks=MODEL_CHECK_OUTPUTS,
        # the other outputs of those jobs: Snakemake redoes a job only for outputs that something
        # asks for, so without these a deleted CSV or PDF would never be made again
        companions=expand("results/limits/{grid}/{name}", grid=GRIDS, name=("limits.csv", "exclusion.pdf", *HEPDATA_FILES))
        + CHECK_JSONS + YIELD_CHECK_JSONS + YIELD_CHECK_PLOTS + YIELD_CHECK_PDFS + YIELD_CHECK_SUMMARY_PDFS + REWEIGHT_CHECK_JSONS
        + MODEL_CHECK_JSONS + (["results/summary/verdicts.json", "results/summary/verdicts.csv"] if GRIDS else []),
        # the PatchSets and limits batches are results too (the archive packs them): a run interrupted after
        # the tables were made but before one of them was complete must still make it again
        intermediate=expand("results/patch/{grid}/patchset.json", grid=GRIDS)
        + [f"results/limits/{g}/batches/{b}.json" for g in LIMIT_BATCHES for b in LIMIT_BATCHES[g]],
        adaptive=ADAPTIVE_TARGETS,


onsuccess:
    print_run_summary()
