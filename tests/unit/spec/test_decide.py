"""`decide:` rules and their actions: what parses and what is refused."""

from __future__ import annotations

from inferd.spec import parse_spec
from tests.unit.spec.documents import classifier, error


def test_decide_rules_and_actions_parse() -> None:
    spec = parse_spec(
        classifier(
            decide=[
                {
                    "decision": "alert",
                    "when": 'label == "yes"',
                    "actions": [
                        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "max_attempts": 3},
                        {"type": "log", "level": "warning"},
                        {"type": "python", "entry": "acts.py:notify"},
                    ],
                }
            ],
            prediction_log={"sample_rate": 0.5, "inputs": ["x"]},
        )
    )
    kinds = [action.type for action in spec.decide[0].actions]
    assert kinds == ["webhook", "log", "python"]
    assert spec.prediction_log is not None and spec.prediction_log.sample_rate == 0.5


def test_decision_names_must_be_unique() -> None:
    rule = {"decision": "alert", "when": "true"}
    assert "its own decision name" in error(classifier(decide=[rule, rule]))


def test_decide_needs_a_task_with_a_prediction() -> None:
    message = error({"name": "m", "decide": [{"decision": "a", "when": "true"}]})
    assert 'task "tensor" has none' in message


def test_webhook_url_must_be_http() -> None:
    rule = {"decision": "a", "when": "true", "actions": [{"type": "webhook", "url": "ftp://x/y"}]}
    message = error(classifier(decide=[rule]))
    assert "decide.0.actions.0.url" in message and "http:// or https://" in message


def test_python_action_entry_must_name_a_file_and_function_inside_the_folder() -> None:
    for entry in ("acts.py", "acts.py:not a name", "../acts.py:f", "/abs.py:f"):
        rule = {"decision": "a", "when": "true", "actions": [{"type": "python", "entry": entry}]}
        assert "decide.0.actions.0.entry" in error(classifier(decide=[rule])), entry
