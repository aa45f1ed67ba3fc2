#!/usr/bin/env python3
"""checkov on template.yaml, offline, with its suppressions held to account.

    checkov_template.py template.yaml docs/deploy.md

1. checkov (CloudFormation framework, which reads SAM resources too) must report no failed check.
2. Every suppression (`Metadata: checkov: skip: [{id, comment}]` on a resource) must carry a comment.
3. Every suppression must still be needed: checkov on the template with all suppressions removed must fail
   exactly the suppressed (check, resource) pairs, no more and no fewer.
4. Every suppression must be listed in docs/deploy.md (a line naming both the check id and the resource).
Exits 1 when any of these does not hold.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from samtranslator.yaml_helper import yaml_parse

CHECKOV = os.path.join(os.path.dirname(sys.executable), "checkov")


def run_checkov(path: str) -> dict:
    # --skip-download: no calls to the Prisma Cloud API for guidelines or mappings (no network here).
    proc = subprocess.run(
        [CHECKOV, "--file", path, "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_UPDATE_CHECK": "1"},
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"checkov gave no JSON report (exit {proc.returncode})")
    if isinstance(report, list):  # one report per framework when several ran
        report = next(r for r in report if r.get("check_type") == "cloudformation")
    if report["summary"].get("parsing_errors"):
        raise SystemExit(f"checkov could not parse {path}")
    return report


def pairs(checks: list[dict]) -> set[tuple[str, str]]:
    return {(c["check_id"], c["resource"].split(".", 1)[1]) for c in checks}


def main() -> int:
    template_path, doc_path = sys.argv[1:3]
    problems: list[str] = []

    report = run_checkov(template_path)
    summary = report["summary"]
    results = report["results"]
    print(f"checkov {summary['checkov_version']}: {summary['passed']} passed, {summary['failed']} failed, "
          f"{summary['skipped']} suppressed, over {summary['resource_count']} resources")
    for check in results.get("failed_checks", []):
        problems.append(f"{check['check_id']} failed on {check['resource']}: {check['check_name']}")

    skipped = results.get("skipped_checks", [])
    with open(doc_path) as f:
        doc_lines = f.read().splitlines()
    print("suppressions (check, resource: reason):")
    for check in sorted(skipped, key=lambda c: (c["resource"], c["check_id"])):
        resource = check["resource"].split(".", 1)[1]
        comment = (check["check_result"].get("suppress_comment") or "").strip()
        print(f"  {check['check_id']:12} {resource}: {comment[:110]}{'...' if len(comment) > 110 else ''}")
        if not comment or comment == "No comment provided":
            problems.append(f"the suppression of {check['check_id']} on {resource} gives no reason")
        if not any(check["check_id"] in line and resource in line for line in doc_lines):
            problems.append(f"the suppression of {check['check_id']} on {resource} is not listed in {doc_path}")

    # Without the suppressions, exactly the suppressed checks must fail.
    with open(template_path) as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        metadata = resource.get("Metadata")
        if isinstance(metadata, dict):
            metadata.pop("checkov", None)
            if not metadata:
                resource.pop("Metadata")
    with tempfile.TemporaryDirectory() as tmp:
        bare_path = os.path.join(tmp, "template.json")
        with open(bare_path, "w") as f:
            json.dump(template, f)
        bare = run_checkov(bare_path)
    failing_bare = pairs(bare["results"].get("failed_checks", []))
    suppressed = pairs(skipped)
    for check_id, resource in sorted(suppressed - failing_bare):
        problems.append(f"the suppression of {check_id} on {resource} is stale: that check passes without it")
    for check_id, resource in sorted(failing_bare - suppressed):
        problems.append(f"{check_id} fails on {resource} with the suppressions removed, but none names it")
    print(f"without its suppressions the template fails {len(failing_bare)} checks: "
          f"{'exactly the suppressed ones' if failing_bare == suppressed else 'NOT the suppressed ones'}")

    if problems:
        print("\ncheckov:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
