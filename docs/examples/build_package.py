"""Build a model package from a training script: the example of docs/package-format.md.

    python docs/examples/build_package.py OUT.zip

Trains an IsolationForest on stand-in data, then writes model.joblib, metadata.json (with the
training profile that drift reports compare against) and deployment_manifest.json (with the sha256
and size of every other file) into one ZIP. Replace `load_training_data` with your own data; keep
the rest. Needs numpy, scikit-learn and joblib, nothing from model-mcp.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from datetime import UTC, datetime

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import f1_score, roc_auc_score

FEATURES = ["bytes_in", "bytes_out", "duration_s"]


def load_training_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stand-in data: training rows, and labelled evaluation rows (-1 anomaly, 1 normal)."""
    rng = np.random.default_rng(7)
    train = rng.normal(size=(2000, len(FEATURES)))
    normal = rng.normal(size=(475, len(FEATURES)))
    anomalies = rng.normal(loc=5.0, size=(25, len(FEATURES)))
    evaluation = np.vstack([normal, anomalies])
    truth = np.array([1] * len(normal) + [-1] * len(anomalies))
    return train, evaluation, truth


def feature_profile(train: np.ndarray) -> dict[str, dict[str, object]]:
    """Per feature: mean, std, min, max and the 0%, 10%, ..., 100% quantiles (11 numbers, ascending)."""
    profile = {}
    for index, name in enumerate(FEATURES):
        column = train[:, index]
        profile[name] = {
            "mean": float(column.mean()), "std": float(column.std()),
            "min": float(column.min()), "max": float(column.max()),
            "quantiles": [float(q) for q in np.quantile(column, np.linspace(0.0, 1.0, 11))],
        }
    return profile


def main(out_path: str) -> None:
    train, evaluation, truth = load_training_data()
    contamination = 0.05
    model = IsolationForest(n_estimators=100, contamination=contamination, random_state=0).fit(train)

    predicted = model.predict(evaluation)
    scores = model.decision_function(evaluation)
    created = datetime.now(UTC).replace(microsecond=0)
    version = created.strftime("%Y%m%d_%H%M%S")

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    files: dict[str, bytes] = {
        "model.joblib": buffer.getvalue(),
        "metadata.json": json.dumps({
            "model_name": "network-anomaly",
            "version": version,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "model_type": "IsolationForest",
            "feature_names": FEATURES,
            "framework": {"name": "scikit-learn", "version": __import__("sklearn").__version__},
            "training_info": {"n_samples": int(train.shape[0]), "contamination": contamination,
                              "dataset": "stand-in normal data"},
            "evaluation_metrics": {
                "f1_score": float(f1_score(truth, predicted, pos_label=-1)),
                # roc_auc_score wants higher = more anomalous; decision_function is lower = more anomalous.
                "roc_auc": float(roc_auc_score(truth == -1, -scores)),
            },
            "feature_profile": feature_profile(train),
        }, indent=2).encode(),
        "requirements.txt": f"scikit-learn=={__import__('sklearn').__version__}\n".encode(),
        "README.md": b"# network-anomaly\n\nIsolationForest over bytes_in, bytes_out, duration_s.\n",
    }
    manifest = {
        "model_version": version,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in files.items()},
        "resources": {"max_memory_mb": 512, "max_latency_ms": 1000},  # generous: a busy machine is slow
    }
    files["deployment_manifest.json"] = json.dumps(manifest, indent=2).encode()

    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    print(f"wrote {out_path} (version {version})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/examples/build_package.py OUT.zip")
    main(sys.argv[1])
