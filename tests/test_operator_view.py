"""The operator's view (issue 23): the Prometheus rules pass promtool's check and its unit tests
(each alert fires on a series that should fire it, quiet on one that should not), and every query
of the rules and of the Grafana dashboard parses and names only metrics the consumer exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helper.breaker.alerts import counters_on
from helper.breaker.sites import BreakerMetrics
from helper.consumer.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "prometheus" / "aws-deploy-helper.rules.yml"
RULE_TESTS = ROOT / "contrib" / "prometheus" / "aws-deploy-helper.rules.test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "aws-deploy-helper.json"
# PromQL words that look like metric names: functions, aggregations, keywords.
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "without", "on", "and",
                "or", "unless", "time", "absent", "histogram_quantile", "le", "ignoring", "group_left", "offset"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed; on CI the rules must be checked (apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def exported() -> set[str]:
    """Every sample name the consumer's /metrics can carry (its registry, the breakers', the alerts')."""
    metrics = Metrics()
    BreakerMetrics(metrics.registry, ["web"])
    counters_on(metrics.registry)
    names = set()
    for family in metrics.registry.collect():
        names |= {sample.name for sample in family.samples}  # a labelled family may have none yet:
        if family.type == "counter":
            names |= {f"{family.name}_total"}
        if family.type == "gauge":
            names |= {family.name}
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
    return names | {"up"}


def recorded() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    without_strings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"[0-9.]+|e[0-9]*", w)}


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_promtool_checks_the_rules_and_every_alert_fires_only_when_it_should():
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    covered = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert alerts == covered, "an alert without a promtool test"


def test_the_example_scrape_config_is_valid_and_uses_the_rules_job_name():
    config = RULES.parent / "prometheus.example.yml"
    checked = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert yaml.safe_load(config.read_text())["scrape_configs"][0]["job_name"] == "aws-deploy-helper"


def test_the_rules_name_only_metrics_the_consumer_exports():
    known = exported() | recorded()
    rules = yaml.safe_load(RULES.read_text())
    unknown = {(r.get("alert") or r.get("record")): metric_names(r["expr"]) - known
               for g in rules["groups"] for r in g["rules"]}
    assert {k: v for k, v in unknown.items() if v} == {}


def test_every_dashboard_query_parses_and_names_only_exported_metrics(tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 15
    known = exported() | recorded()
    assert {q: metric_names(q) - known for q in queries if metric_names(q) - known} == {}
    # promtool parses PromQL only inside rules: each query becomes a recording rule to check.
    as_rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": q}
                                                              for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(as_rules))
    checked = subprocess.run([promtool(), "check", "rules", str(tmp_path / "dashboard.rules.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_name_check_itself_sees_an_unknown_metric():
    assert metric_names('sum by (site) (rate(adh_not_a_metric_total{site="x"}[5m]))') == {"adh_not_a_metric_total"}
    assert "adh_not_a_metric_total" not in exported()
