"""Every metric the Grafana dashboard and the alert rules query is one the services export.

The dashboard (k8s/grafana/ekey-dashboard.json: panel targets and templating queries) and
the alert rules (k8s/base/prometheus-rules.yaml) are read, each PromQL expression is split
into tokens, and the metric names and label names it uses are compared with what the
three admin `/metrics` of a live stack expose after a little traffic. A histogram `x` is
exposed as `x_bucket`, `x_sum` and `x_count`; a label used in a matcher or in
`by (...)` must be on that metric (or be a label Prometheus adds to targets: job,
instance, the Kubernetes ones). Every finding is reported at once.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass, field

import httpx
import yaml

from stack import REPO, Stack

DASHBOARD = REPO / "k8s" / "grafana" / "ekey-dashboard.json"
RULES = [REPO / "k8s" / "base" / "prometheus-rules.yaml"]
SERVICES = ("issuer", "gateway", "jwks")

# Series Prometheus makes itself, not the services.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
             "scrape_samples_post_metric_relabeling", "ALERTS", "ALERTS_FOR_STATE"}
# Labels Prometheus attaches to every series of a target (scrape config, ServiceMonitor,
# podTargetLabels), so they are never in the exposition itself.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container", "node"}
TARGET_LABEL_PREFIXES = ("app_kubernetes_io_",)
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2", "start", "end"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},@])
""", re.VERBOSE)


@dataclass
class Expression:
    """What one PromQL expression uses: metric names, and label names per metric."""

    where: str
    text: str
    metrics: list[str] = field(default_factory=list)
    # (label, metrics it must be on (any of them), how it is used)
    labels: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match:
            raise ValueError(f"cannot tokenize {text[position:position + 20]!r} in {text!r}")
        position = match.end()
        if match.lastgroup not in ("space", "comment"):
            tokens.append((match.lastgroup, match.group()))
    return tokens


def closing(tokens: list[tuple[str, str]], start: int) -> int:
    """The index of the `)` or `}` matching the opening token at `start`."""
    pairs = {"(": ")", "{": "}"}
    opener, depth = tokens[start][1], 0
    for index in range(start, len(tokens)):
        value = tokens[index][1]
        if tokens[index][0] == "op" and value == opener:
            depth += 1
        elif tokens[index][0] == "op" and value == pairs[opener]:
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced {opener} in {' '.join(v for _, v in tokens)}")


def analyse(where: str, text: str, recorded: set[str]) -> Expression:
    """Metric names (identifiers that are not functions, keywords, label names or recorded
    rule names) and the label names of matchers, `by`/`without` and `on`/`ignoring` lists."""
    expression = Expression(where, text)
    tokens = tokenize(text)
    metric_at: dict[int, str] = {}
    label_only: set[int] = set()
    index = 0
    # First pass: which identifiers are metric names, and where they are.
    while index < len(tokens):
        kind, value = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "op" and value == "{":
            end = closing(tokens, index)
            label_only.update(range(index, end + 1))
            index = end + 1
            continue
        if kind == "ident" and value in LABEL_LISTS and following == ("op", "("):
            end = closing(tokens, index + 1)
            label_only.update(range(index, end + 1))
            index = end + 1
            continue
        if kind == "ident" and following != ("op", "(") and value.lower() not in KEYWORDS \
                and not (value in AGGREGATIONS and following[1] in ("by", "without")):
            if value not in recorded:
                metric_at[index] = value
                expression.metrics.append(value)
        index += 1

    def metrics_between(start: int, end: int) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for i, name in metric_at.items() if start <= i <= end))

    everything = metrics_between(0, len(tokens))
    # Second pass: label names and the metrics they must be on.
    for index, (kind, value) in enumerate(tokens):
        if kind == "op" and value == "{":
            owner = metric_at.get(index - 1)
            end = closing(tokens, index)
            for i in range(index + 1, end):
                if tokens[i][0] == "ident" and i + 1 <= end and tokens[i + 1][1] in ("=", "!=", "=~", "!~") \
                        and tokens[i][1] != "__name__":
                    expression.labels.append((tokens[i][1], (owner,) if owner else everything, "matcher"))
        elif kind == "ident" and value in LABEL_LISTS and index + 1 < len(tokens) and tokens[index + 1][1] == "(":
            end = closing(tokens, index + 1)
            names = [v for k, v in tokens[index + 2:end] if k == "ident"]
            scope = everything
            if value in ("by", "without"):
                # `agg by (l) (expr)` or `agg (expr) by (l)`: the labels are on expr's metrics.
                if end + 1 < len(tokens) and tokens[end + 1][1] == "(" and index > 0 \
                        and tokens[index - 1][1] in AGGREGATIONS:
                    scope = metrics_between(end + 1, closing(tokens, end + 1))
                elif index > 0 and tokens[index - 1][1] == ")":
                    depth, start = 0, index - 1
                    while start >= 0:
                        if tokens[start][1] == ")":
                            depth += 1
                        elif tokens[start][1] == "(":
                            depth -= 1
                            if depth == 0:
                                break
                        start -= 1
                    scope = metrics_between(start, index - 1)
            for name in names:
                expression.labels.append((name, scope, value))
    return expression


def walk_panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found += walk_panels(panel.get("panels", []))
    return found


def dashboard_expressions(recorded: set[str]) -> list[Expression]:
    board = json.loads(DASHBOARD.read_text())
    expressions = []
    for panel in walk_panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                expressions.append(analyse(f"dashboard panel {panel.get('title')!r} {target.get('refId')}",
                                           target["expr"], recorded))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        where = f"dashboard variable ${variable.get('name')}"
        labels = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query)
        if labels:
            expression = analyse(where, labels.group(1), recorded)
            expression.labels.append((labels.group(2), tuple(expression.metrics), "label_values"))
        else:
            inner = re.fullmatch(r"\s*(?:query_result|metrics|label_names)\((.*)\)\s*", query)
            expression = analyse(where, inner.group(1) if inner else query, recorded)
        expressions.append(expression)
    return expressions


def rules_expressions() -> tuple[list[Expression], set[str]]:
    recorded, rules = set(), []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    recorded.add(rule["record"])
                rules.append((f"{path.relative_to(REPO)} {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return [analyse(where, text, recorded) for where, text in rules], recorded


@dataclass
class Exposition:
    """The families, sample names and label names of one service's /metrics."""

    service: str
    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)   # sample name -> label names

    def exports(self, name: str) -> bool:
        if name in self.types or name in self.labels:
            return True
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and self.types.get(name[: -len(suffix)]) in ("histogram", "summary"):
                return True
        # OpenMetrics style: the family `x` of counter type is sampled as x_total.
        return name.endswith("_total") and self.types.get(name[: -len("_total")]) == "counter"

    def label_names(self, name: str) -> set[str] | None:
        """Label names of the series of `name` (None when it has no series here)."""
        names = [name]
        if self.types.get(name) in ("histogram", "summary"):
            names = [name + suffix for suffix in HISTOGRAM_SUFFIXES]
        found = [self.labels[n] for n in names if n in self.labels]
        return set().union(*found) if found else None


SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="(?:\\.|[^"\\])*"')


def parse(service: str, text: str) -> Exposition:
    exposition = Exposition(service)
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            exposition.types[name] = kind.strip()
        elif line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, f"{service}: unparsable /metrics line {line!r}"
            exposition.labels.setdefault(match.group(1), set()).update(LABEL.findall(match.group(3) or ""))
    return exposition


def drive_traffic(stack: Stack) -> None:
    """One allowed call (token issued, upstream answered), one gateway refusal without a
    token and one issuer denial, so that the labelled series of those paths exist."""
    call = stack.ekey("call", "POST", stack.url("gateway", "/payments"), "-d", '{"amount":1}')
    assert '"status":"created"' in call.stdout, call.stdout + call.stderr
    with httpx.Client(verify=ssl.create_default_context(cafile=stack.ca), timeout=10) as client:
        assert client.get(stack.url("gateway", "/payments/1")).status_code == 401
        assert client.post(stack.url("issuer", "/token"), data={"grant_type": "client_credentials"}).status_code in (400, 401)


def scrape(stack: Stack) -> dict[str, Exposition]:
    found = {}
    for service in SERVICES:
        response = httpx.get(stack.admin_url(service, "/metrics"), timeout=10)
        assert response.status_code == 200, f"{service} /metrics: {response.status_code}"
        found[service] = parse(service, response.text)
    return found


def is_target_label(label: str) -> bool:
    return label in TARGET_LABELS or label.startswith(TARGET_LABEL_PREFIXES)


def test_tokenizer_finds_metrics_and_labels() -> None:
    expression = analyse("t", 'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{route="x",job=~"$job"}[$__rate_interval])))'
                              ' > on() group_left() (0.05 * rec:rate5m) and sum(rate(b_total[5m] offset 1h)) by (reason)'
                              ' or absent(up{app_kubernetes_io_name="ekey-jwks"}) unless 7 * 24 * 3600 < time() - c',
                         {"rec:rate5m"})
    assert expression.metrics == ["a_bucket", "b_total", "up", "c"]
    assert ("le", ("a_bucket",), "by") in expression.labels
    assert ("route", ("a_bucket",), "matcher") in expression.labels
    assert ("reason", ("b_total",), "by") in expression.labels
    assert ("app_kubernetes_io_name", ("up",), "matcher") in expression.labels


def test_dashboard_and_alerts_use_only_exported_metrics(stack: Stack) -> None:
    rules, recorded = rules_expressions()
    expressions = dashboard_expressions(recorded) + rules
    assert len(expressions) > 20, "too few expressions found: is the dashboard empty?"

    drive_traffic(stack)
    time.sleep(0.5)
    expositions = scrape(stack)

    missing: dict[str, list[str]] = {}
    bad_labels: list[str] = []
    unchecked: set[str] = set()
    for expression in expressions:
        for name in expression.metrics:
            if name in SYNTHETIC or any(e.exports(name) for e in expositions.values()):
                continue
            missing.setdefault(name, []).append(expression.where)
        for label, owners, use in expression.labels:
            if is_target_label(label):
                continue
            present = [(e.service, owner, e.label_names(owner)) for owner in owners if owner not in SYNTHETIC
                       for e in expositions.values() if e.label_names(owner) is not None]
            if not present:
                unchecked.update(o for o in owners if o not in missing)
                continue
            if not any(label in names for _, _, names in present):
                bad_labels.append(f"{expression.where}: label {label!r} ({use}) is on no series of "
                                  + ", ".join(f"{o} ({s}: {sorted(n)})" for s, o, n in present))

    report = []
    if missing:
        report.append("metric names no service exports:\n" + "\n".join(
            f"  {name}  (used by {len(places)}: {'; '.join(sorted(set(places))[:3])}{' ...' if len(set(places)) > 3 else ''})"
            for name, places in sorted(missing.items())))
    if bad_labels:
        report.append("label names not on their metric:\n" + "\n".join(f"  {line}" for line in bad_labels))
    if unchecked - set(missing):
        print("labels not checked (no series of these yet):", ", ".join(sorted(unchecked - set(missing))))
    assert not report, "\n".join(report)
