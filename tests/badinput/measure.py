"""Classify how the product handles each case of a bad-input corpus (issue 26).

Runs every case as ``tests/test_badinput.py`` does (the real command, in a fresh project copy) and
sorts the outcome into: handled well (non-zero exit, one error line last naming the file and the
expected fragments, no traceback, nothing written), accepted silently (exit 0), misleading message
(an error that does not name the file or the cause, or more than one line), traceback, files left
behind, and hang (no answer in the runner's timeout).

Usage (from the repository root)::

    RECASTFLOW_MIRROR=../shared/data .venv/bin/python tests/badinput/measure.py [hostile|cases] [-v]
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_badinput as tb  # noqa: E402


def classify(case: dict, run: tb.Run) -> tuple[str, str]:
    """The outcome's class and the line that shows it."""
    proc = run.proc
    text = proc.stdout + proc.stderr
    last = proc.stderr.rstrip("\n").splitlines()[-1] if proc.stderr.strip() else ""
    if proc.returncode == -9 and "HANG" in proc.stderr:
        return "hang", last
    if "Traceback" in text:
        return "traceback", last
    if proc.returncode == 0:
        return "accepted silently", last or proc.stdout.strip().splitlines()[-1:][0] if proc.stdout.strip() else ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"recastflow {case['run']}: error: ")]
    if len(errors) != 1 or last != errors[0]:
        return "misleading message", last
    if case["file"] not in last or any(f not in last for f in case["expect"]) or len(last) >= 600:
        return "misleading message", last
    if (run.project / run.out).exists() or tb._files(run.project) != run.before:
        return "files left", last
    return "handled well", last


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "hostile"
    cases = tb.HOSTILE if which == "hostile" else tb.MANIFEST["cases"]
    verbose = "-v" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        built = tb.Built(Path(tmp) / "built")
        (Path(tmp) / "built").mkdir()

        def one(case: dict) -> tuple[str, str]:
            folder = Path(tmp) / case["id"]
            folder.mkdir()
            return classify(case, tb._run(case, folder, built))

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(one, cases))
    counts = Counter(kind for kind, _ in results)
    for case, (kind, line) in zip(cases, results):
        if verbose or kind != "handled well":
            print(f"{kind:20s} {case['id']}: {line[:300]}")
    print(f"{len(cases)} cases: " + ", ".join(f"{n} {k}" for k, n in counts.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
