#!/usr/bin/env python3
"""Lists the cdk-nag acknowledgments the CDK app wrote into its template, and holds them to account.

    nag_acknowledgments.py cdk.out/Keyrot.template.json cdk.out/validation-report.json docs/deploy.md

`cdk synth` has already failed if a rule of the AwsSolutions pack found anything unacknowledged. This prints
what was acknowledged (rule, resource, reason) and fails when one has no reason, when it is not listed in
docs/deploy.md (a line naming the rule and the resource), or when the validation report holds a violation.
"""
from __future__ import annotations

import json
import sys


def main() -> int:
    template_path, report_path, doc_path = sys.argv[1:4]
    with open(template_path) as f:
        template = json.load(f)
    with open(report_path) as f:
        report = json.load(f)
    with open(doc_path) as f:
        doc_lines = f.read().splitlines()
    problems: list[str] = []

    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            where = ", ".join(c.get("constructPath", "?") for c in violation.get("violatingConstructs", []))
            problems.append(f"{plugin['pluginName']}: {violation['ruleName']} ({violation.get('severity')}) at {where}")

    print("cdk-nag acknowledgments (rule, resource: reason):")
    count = 0
    for logical_id, resource in sorted(template.get("Resources", {}).items()):
        for ack in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            rule, reason = ack["id"], (ack.get("reason") or "").strip()
            if not rule.startswith("AwsSolutions-"):
                continue
            count += 1
            print(f"  {rule}  {logical_id}: {reason[:100]}{'...' if len(reason) > 100 else ''}")
            if len(reason) < 10:
                problems.append(f"{rule} on {logical_id} is acknowledged without a reason")
            base = rule.split("[", 1)[0]
            finding = rule[len(base):].strip("[]")
            if not any(base in line and logical_id in line and finding in line for line in doc_lines):
                problems.append(f"{rule} on {logical_id} is not listed in {doc_path}")
    print(f"  {count} acknowledged findings; AwsSolutions pack: "
          f"{'no unacknowledged finding' if not problems else 'see below'}")

    if problems:
        print("\ncdk-nag:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
