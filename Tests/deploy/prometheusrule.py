#!/usr/bin/env python3
"""Prints k8s/components/prometheus-operator/prometheusrule.yaml: the alert rules of
k8s/base/prometheus-rules.yaml (the one source, checked by promtool) as a PrometheusRule.

usage: Tests/deploy/prometheusrule.py [RULES.yaml] > k8s/components/prometheus-operator/prometheusrule.yaml

Tests/deploy/check.sh fails when the committed file differs from this output, and
check_render.py checks that the rendered PrometheusRule carries the same groups.
"""
import sys

import yaml


class Dumper(yaml.SafeDumper):
    pass


def text(dumper, value):
    # Multi-line expressions and descriptions stay readable block scalars.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, text)

HEADER = """\
# GENERATED from k8s/base/prometheus-rules.yaml by Tests/deploy/prometheusrule.py; do not
# edit: change the rules file and run
#   Tests/deploy/prometheusrule.py > k8s/components/prometheus-operator/prometheusrule.yaml
# (Tests/deploy/check.sh fails while the two differ).
"""


def main(argv):
    path = argv[0] if argv else "k8s/base/prometheus-rules.yaml"
    with open(path) as f:
        rules = yaml.safe_load(f)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ekey", "labels": {"app.kubernetes.io/part-of": "ekey"}},
        "spec": {"groups": rules["groups"]},
    }
    sys.stdout.write(HEADER + yaml.dump(rule, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True))


if __name__ == "__main__":
    main(sys.argv[1:])
