#!/usr/bin/env python3
"""The operators' view, checked: the dashboard and the rotation-failure message of template.yaml.

    dashboard.py template.yaml src/ports/mod.rs

- The dashboard body is JSON once Fn::Sub has filled it in, and every keyrot metric it shows is one the
  functions emit (the names in `Metric::as_str`), so a renamed metric cannot leave an empty widget.
- The failure message uses only placeholders its InputPathsMap defines, and says what to run.
Exits 1 on any problem.
"""
import json
import re
import sys

from samtranslator.yaml_helper import yaml_parse


def main(template_path: str, metrics_source: str) -> int:
    with open(template_path) as f:
        resources = yaml_parse(f.read())["Resources"]
    emitted = set(re.findall(r'Metric::\w+ => "(\w+)"', open(metrics_source).read()))
    problems = []

    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "SUBSTITUTED", body))
    shown = set()
    for widget in dashboard["widgets"]:
        for metric in widget["properties"]["metrics"]:
            if metric and metric[0] == "keyrot":
                shown.add(metric[1])
            for part in metric:
                if isinstance(part, dict) and "expression" in part:
                    shown.update(re.findall(r'MetricName="(\w+)"', part["expression"]))
    for name in sorted(shown - emitted):
        problems.append(f"the dashboard shows keyrot metric {name}, which no function emits")
    if not shown:
        problems.append("the dashboard shows no keyrot metric")

    target = resources["RotationFailedRule"]["Properties"]["Targets"][0]
    transformer = target["InputTransformer"]
    used = set(re.findall(r"<(\w+)>", transformer["InputTemplate"]))
    for name in sorted(used - set(transformer["InputPathsMap"])):
        problems.append(f"the failure message uses <{name}>, which its InputPathsMap does not define")
    if "keyrot repair" not in transformer["InputTemplate"]:
        problems.append("the failure message does not say how to clear a stuck rotation")

    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"dashboard: {len(dashboard['widgets'])} widgets, keyrot metrics {sorted(shown)}; "
          f"failure message placeholders {sorted(used)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
