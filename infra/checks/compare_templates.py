#!/usr/bin/env python3
"""SAM and CDK declare the same deployment: compares template.yaml, expanded by the real SAM transform
(aws-sam-translator, what CloudFormation runs), with the template `cdk synth` wrote.

    compare_templates.py template.yaml cdk.out/Keyrot.template.json

Compared, and printed as it goes:
  - resources: logical id -> type, conditions, DeletionPolicy / UpdateReplacePolicy;
  - IAM actions of every policy (role policies and trust, key policy, topic policy, Lambda permissions),
    per resource and statement Sid, with effect, principals and the condition keys of each;
  - the properties of every resource, with intrinsic functions normalised (Fn::Sub and Fn::Join name the
    same string) and the few keys each tool adds on its own left out (code location, tool metadata);
  - parameters (type, default, allowed values / pattern), conditions and outputs.
Exits 1 on any difference.
"""
from __future__ import annotations

import copy
import json
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the SAM transform wants a region to name ARNs

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# Keys a tool adds by itself that say nothing about the deployment.
CDK_ONLY_PARAMETERS = {"BootstrapVersion"}  # the CDK bootstrap stack's version check
CDK_ONLY_RULES = {"CheckBootstrapVersion"}
IGNORED_RESOURCE_KEYS = {"Metadata"}  # checkov skips, BuildMethod, aws:cdk:path, cdk_nag
IGNORED_PROPERTIES = {
    "AWS::Lambda::Function": {"Code", "Tags"},  # S3 location of the zip; SAM's lambda:createdBy tag
}

differences: list[str] = []


def differ(what: str, sam, cdk) -> None:
    differences.append(f"{what}:\n      SAM: {json.dumps(sam, sort_keys=True)}\n      CDK: {json.dumps(cdk, sort_keys=True)}")


# ---------------------------------------------------------------------------------------------- loading
class _NoManagedPolicies:
    def load(self):
        return {}


def load_sam(path: str) -> dict:
    with open(path) as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # `sam package` replaces the local CodeUri with an S3 location before CloudFormation transforms it.
            resource["Properties"]["CodeUri"] = "s3://placeholder/bootstrap.zip"
    return transform(copy.deepcopy(template), {}, _NoManagedPolicies())


def load_cdk(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------- normalising
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def _parts(value):
    """A string-valued intrinsic as a list of literal strings and ('ref'|'getatt', ...) tuples."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub" and isinstance(arg, str):
            arg = [arg, {}]
        if fn == "Fn::Sub" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            # Fn::Sub [text, {var: value}] is the text with each ${var} replaced by value.
            text, variables = arg
            out, pos = [], 0
            for m in _SUB_VAR.finditer(text):
                out.append(text[pos:m.start()])
                name = m.group(1)
                if name in variables:
                    p = _parts(variables[name])
                    if p is None:
                        return None
                    out.extend(p)
                else:
                    out.append(("getatt", *name.split(".", 1)) if "." in name else ("ref", name))
                pos = m.end()
            out.append(text[pos:])
            return out
        if fn == "Fn::Join" and isinstance(arg, list) and arg[0] == "":
            out = []
            for item in arg[1]:
                p = _parts(item)
                if p is None:
                    return None
                out.extend(p)
            return out
        if fn == "Ref":
            return [("ref", arg)]
        if fn == "Fn::GetAtt":
            target = arg if isinstance(arg, list) else arg.split(".", 1)
            return [("getatt", *target)]
    return None


def _merge(parts):
    out = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += p
                continue
        out.append(p)
    return out


def norm(value):
    """Normalises intrinsics so that equal strings compare equal however each tool spelled them."""
    parts = _parts(value)
    if parts is not None and not isinstance(value, str):
        merged = _merge(parts)
        if len(merged) == 1 and isinstance(merged[0], str):
            return merged[0]
        return {"string": [list(p) if isinstance(p, tuple) else p for p in merged]}
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()  # CloudFormation reads true and "true" alike
    if isinstance(value, (int, float)):
        return str(value)
    return value


def render(value) -> str:
    """A normalised string as CloudFormation's Fn::Sub would spell it."""
    if isinstance(value, dict) and set(value) == {"string"}:
        return "".join(p if isinstance(p, str) else "${" + ".".join(p[1:]) + "}" for p in value["string"])
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def as_list(value):
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------------- IAM
def policy_documents(logical_id: str, resource: dict):
    """(label, policy document) for every policy a resource holds."""
    props = resource.get("Properties", {})
    rtype = resource["Type"]
    if rtype == "AWS::IAM::Role":
        yield f"{logical_id} trust", props.get("AssumeRolePolicyDocument", {})
        for policy in props.get("Policies", []):
            # A policy the role holds only under a condition: {"Fn::If": [condition, policy, AWS::NoValue]}.
            condition = ""
            if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
                name, policy, _ = policy["Fn::If"]
                condition = f" (if {name})"
            yield f"{logical_id} policy {policy['PolicyName']}{condition}", policy["PolicyDocument"]
    elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        yield f"{logical_id} policy", props.get("PolicyDocument", {})
    elif rtype == "AWS::KMS::Key":
        yield f"{logical_id} key policy", props.get("KeyPolicy", {})
    elif rtype in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
        yield f"{logical_id} resource policy", props.get("PolicyDocument", {})
    elif rtype == "AWS::Lambda::Permission":
        yield f"{logical_id} permission", {
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": props.get("Principal")},
                "Action": props.get("Action"),
                "Condition": {"property": {k: True for k in ("SourceAccount", "SourceArn") if k in props}},
            }]
        }


def statement_actions(template: dict) -> dict:
    """{label: {(sid, effect, principal, action, condition keys)}} for every statement of every policy."""
    out: dict[str, set] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        for label, doc in policy_documents(logical_id, resource):
            rows = out.setdefault(label, set())
            for st in as_list(doc.get("Statement", [])):
                principal = st.get("Principal", {})
                if isinstance(principal, dict):
                    principal = ",".join(sorted(
                        f"{kind}:{render(norm(v))}" for kind, vs in principal.items() for v in as_list(vs)
                    ))
                conditions = ",".join(sorted(
                    f"{op}:{key}" for op, keys in st.get("Condition", {}).items() for key in keys
                ))
                for action in as_list(st.get("Action", [])):
                    rows.add((st.get("Sid", ""), st.get("Effect"), principal, action, conditions))
    return out


# ---------------------------------------------------------------------------------------------- comparing
def compare(sam: dict, cdk: dict) -> None:
    sam_res, cdk_res = sam["Resources"], cdk["Resources"]
    cdk_res = {k: v for k, v in cdk_res.items() if v["Type"] != "AWS::CDK::Metadata"}

    print("resources (logical id, type, condition, deletion policy):")
    for lid in sorted(set(sam_res) | set(cdk_res)):
        s, c = sam_res.get(lid), cdk_res.get(lid)
        if s is None or c is None:
            differ(f"resource {lid} exists in one template only", s and s["Type"], c and c["Type"])
            continue
        mark = "ok  " if s["Type"] == c["Type"] else "DIFF"
        print(f"  {mark} {lid:40} {s['Type']:38} {s.get('Condition', '-'):20} {s.get('DeletionPolicy', '-')}")
        for key in ("Type", "Condition", "DeletionPolicy", "UpdateReplacePolicy"):
            sv, cv = s.get(key), c.get(key)
            if key in ("DeletionPolicy", "UpdateReplacePolicy"):
                # CloudFormation's default is Delete; CDK writes it out, SAM leaves it implicit.
                sv, cv = sv or "Delete", cv or "Delete"
            if sv != cv:
                differ(f"{lid} {key}", sv, cv)
        sdep = sorted(as_list(s.get("DependsOn", [])))
        cdep = sorted(as_list(c.get("DependsOn", [])))
        # CDK adds DependsOn on a function's role, which its Role property already implies.
        implied = {d for d in cdep if d in json.dumps(c.get("Properties", {}))}
        if sorted(set(cdep) - implied) != sorted(set(sdep) - implied):
            differ(f"{lid} DependsOn", sdep, cdep)
        ignored = IGNORED_PROPERTIES.get(s["Type"], set())
        sp = {k: norm(v) for k, v in s.get("Properties", {}).items() if k not in ignored}
        cp = {k: norm(v) for k, v in c.get("Properties", {}).items() if k not in ignored}
        for key in sorted(set(sp) | set(cp)):
            if key in ("Policies", "AssumeRolePolicyDocument", "KeyPolicy", "PolicyDocument"):
                sv, cv = _canonical_policy(sp.get(key)), _canonical_policy(cp.get(key))
            else:
                sv, cv = _canonical(sp.get(key)), _canonical(cp.get(key))
            if sv != cv:
                differ(f"{lid}.Properties.{key}", sp.get(key), cp.get(key))

    types_sam = sorted(v["Type"] for v in sam_res.values())
    types_cdk = sorted(v["Type"] for v in cdk_res.values())
    print(f"  {len(types_sam)} resources in the SAM template (after the transform), {len(types_cdk)} in the CDK one; "
          f"{len(set(types_sam))} resource types")
    if types_sam != types_cdk:
        differ("resource types", types_sam, types_cdk)

    print("\nIAM actions (policy, sid, effect, principal, action, condition keys):")
    sam_acts, cdk_acts = statement_actions(sam), statement_actions({"Resources": cdk_res})
    for label in sorted(set(sam_acts) | set(cdk_acts)):
        s, c = sam_acts.get(label, set()), cdk_acts.get(label, set())
        print(f"  {label}")
        for row in sorted(s | c):
            mark = "ok  " if row in s and row in c else ("SAM " if row in s else "CDK ")
            sid, effect, principal, action, conds = row
            print(f"    {mark} {effect:5} {action:42} {sid or '-':44} {principal or '-'} {conds}")
        if s != c:
            differ(f"IAM actions of {label}", sorted(s - c), sorted(c - s))
    all_sam = {r[3] for rows in sam_acts.values() for r in rows}
    all_cdk = {r[3] for rows in cdk_acts.values() for r in rows}
    print(f"  {len(all_sam)} distinct actions in SAM, {len(all_cdk)} in CDK")
    wildcard = sorted(a for a in all_sam | all_cdk if a == "*" or a.endswith(":*"))
    print(f"  '*' actions: {wildcard or 'none'}" + (" (the key policy's account root only)" if wildcard == ["kms:*"] else ""))

    print("\nparameters, conditions, outputs:")
    sp = {k: v for k, v in sam.get("Parameters", {}).items()}
    cp = {k: v for k, v in cdk.get("Parameters", {}).items() if k not in CDK_ONLY_PARAMETERS}
    for name in sorted(set(sp) | set(cp)):
        s, c = sp.get(name), cp.get(name)
        keys = ("Type", "Default", "AllowedValues", "AllowedPattern", "MinLength", "NoEcho")
        sv = {k: _canonical(norm(s.get(k))) for k in keys if s and k in s}
        cv = {k: _canonical(norm(c.get(k))) for k in keys if c and k in c}
        print(f"  {'ok  ' if sv == cv else 'DIFF'} parameter {name} = {s.get('Default') if s else None!r}")
        if sv != cv:
            differ(f"parameter {name}", sv, cv)
    sc, cc = sam.get("Conditions", {}), cdk.get("Conditions", {})
    for name in sorted(set(sc) | set(cc)):
        same = _canonical(norm(sc.get(name))) == _canonical(norm(cc.get(name)))
        print(f"  {'ok  ' if same else 'DIFF'} condition {name}")
        if not same:
            differ(f"condition {name}", sc.get(name), cc.get(name))
    so, co = sam.get("Outputs", {}), cdk.get("Outputs", {})
    for name in sorted(set(so) | set(co)):
        sv = so.get(name) and _canonical(norm(so[name].get("Value")))
        cv = co.get(name) and _canonical(norm(co[name].get("Value")))
        print(f"  {'ok  ' if sv == cv and sv else 'DIFF'} output {name}")
        if sv != cv:
            differ(f"output {name}", so.get(name), co.get(name))
    extra_rules = set(cdk.get("Rules", {})) - CDK_ONLY_RULES
    if set(sam.get("Rules", {})) != extra_rules:
        differ("rules", sorted(sam.get("Rules", {})), sorted(extra_rules))


def _canonical(value):
    """Order-insensitive where CloudFormation is (lists of objects such as attribute definitions)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _canonical_policy(value):
    """A policy document with single actions/resources as one-element lists and statement order ignored."""
    def fix(v):
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k in ("Action", "Resource", "NotAction", "NotResource", "Service", "AWS"):
                    x = as_list(x)
                out[k] = fix(x)
            return out
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return _canonical(fix(value))


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sam, cdk = load_sam(sys.argv[1]), load_cdk(sys.argv[2])
    compare(sam, cdk)
    if differences:
        print(f"\nSAM and CDK differ in {len(differences)} place(s):", file=sys.stderr)
        for d in differences:
            print(f"  - {d}", file=sys.stderr)
        return 1
    print("\nSAM and CDK templates declare the same resources, properties, IAM actions, parameters and outputs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
