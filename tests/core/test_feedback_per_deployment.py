"""Feedback labels belong to one deployment (issue 18, item 4).

Deploy A, label 200 rows, deploy B, deploy A again: A's drift report showed the old labels (and a
false critical alert). Labels are kept per deployment (the version and the moment it was
deployed): a later deployment of the same version starts without labels, and labels sent late
for a request of an earlier deployment stay with that deployment, never with a later one.
"""

from __future__ import annotations

from model_mcp import samples


def _setup(manager, packages):
    manager.import_zip(path=str(packages(version="A")))
    manager.import_zip(path=str(packages(version="B", seed=4)))
    manager.deploy(version="A")
    rows = samples.sample_rows(200)
    answer = manager.predict(rows=rows)
    wrong = [-label for label in answer["labels"]]  # every label flipped: a performance collapse
    return rows, answer, wrong


def test_labels_do_not_survive_a_redeploy_of_the_same_version(manager, packages):
    rows, answer, wrong = _setup(manager, packages)
    first = manager.record_feedback(request_id=answer["request_id"], labels=wrong)
    assert manager.drift_report(version="A", current=rows).performance_drift is not None
    manager.deploy(version="B")
    manager.deploy(version="A")
    report = manager.drift_report(version="A", current=rows)
    assert report.performance_drift is None
    assert not [a for a in report.alerts if a.kind in ("performance_drift", "concept_drift")]
    fresh = manager.predict(rows=rows)
    second = manager.record_feedback(request_id=fresh["request_id"], labels=fresh["labels"])
    assert second.n_labelled_total == 200  # only this deployment's labels




def test_late_labels_of_an_earlier_deployment_never_count_for_a_later_one(manager, packages):
    rows, answer, wrong = _setup(manager, packages)
    manager.deploy(version="B")
    manager.deploy(version="A")
    late = manager.record_feedback(request_id=answer["request_id"], labels=wrong)
    assert late.version == "A"
    report = manager.drift_report(version="A", current=rows)
    assert report.performance_drift is None  # the serving deployment of A has no labels
    assert not [a for a in report.alerts if a.kind in ("performance_drift", "concept_drift")]
