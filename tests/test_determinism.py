"""The same configuration gives the same bytes: with --cores 1 and --cores 2, in a fresh folder.

Every final output under results/ is compared (plots as PNG and PDF and the HTML report
included); only results/benchmarks/ is left out: it holds each job's wall-clock time. Re-runs
in the same folder after a kill or a deleted output are compared in tests/test_faults.py.
"""

import pytest

from workflow_project import PROFILE, default_project, final_outputs, snakemake


@pytest.mark.slow
def test_cores_1_and_cores_2_give_the_same_bytes(default_reference, tmp_path):
    _, reference = default_reference  # --cores 2
    assert {"results/report/index.html", "results/limits/TINY/exclusion.png", "results/limits/TINY/exclusion.pdf",
            "results/generate/TINY/TChiWH_700_0/chunk0.parquet",
            "results/reweight/TINY_BR/TChiWH_700_0_BRh050/yields.json"} <= set(reference)
    project = default_project(tmp_path / "project")  # a fresh folder
    proc = snakemake(project, "--cores", "1", *PROFILE)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    outputs = final_outputs(project)
    assert sorted(outputs) == sorted(reference)
    assert [rel for rel in reference if outputs[rel] != reference[rel]] == []
