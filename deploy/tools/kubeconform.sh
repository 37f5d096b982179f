#!/usr/bin/env bash
# kubeconform v0.8.0 into <tools>/bin and the offline Kubernetes schemas it validates against into <tools>/k8s-schemas.
set -euo pipefail
tools=${1:?usage: kubeconform.sh <absolute path of .cache/tools>}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
kubeconform_version=v0.8.0
# The Kubernetes API the manifests are checked against; tests/deploy/test_manifests.py names the same one.
schemas=$tools/k8s-schemas/v1.32.0-local-strict

# go version -m reads the module version a Go binary was built from (kubeconform -v says "development").
if ! { [[ -x $tools/bin/kubeconform ]] && go version -m "$tools/bin/kubeconform" 2>/dev/null |
  grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/yannh/kubeconform[[:space:]]+$kubeconform_version[[:space:]]"; }; then
  command -v go >/dev/null || { echo "kubeconform.sh: Go is needed to install kubeconform" >&2; exit 1; }
  GOBIN=$tools/bin go install "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version"
fi

# kubernetes-validate (a dev dependency) ships the schemas; kubeconform cannot resolve them as shipped (an `$id`
# per file, `$ref`s to /api/_definitions.json), so they are copied with those two rewritten.
python=$repo/.venv/bin/python
[[ -x $python ]] || { echo "kubeconform.sh: $python is missing: run make install first" >&2; exit 1; }
package=$("$python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')
validate_version=$("$python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')
source=$package/kubernetes-json-schema/$(basename "$schemas")
if [[ -f $schemas/.source ]] && [[ $(<"$schemas/.source") == "$source $validate_version" ]]; then
  exit 0
fi
"$python" - "$source" "$schemas" "$source $validate_version" <<'PY'
"""Copy one kubernetes-validate schema directory for kubeconform: no $id, $refs relative to the directory."""
import json, pathlib, shutil, sys

source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ABSOLUTE = "/api/_definitions.json"


def rewrite(node):
    if isinstance(node, dict):
        # Only string values are keywords: JSONSchemaProps also has *properties* named "$ref" and "$id".
        fixed = {key: rewrite(value) for key, value in node.items() if not (key == "$id" and isinstance(value, str))}
        if isinstance(fixed.get("$ref"), str):
            fixed["$ref"] = fixed["$ref"].replace(ABSOLUTE, "_definitions.json", 1)
        return fixed
    if isinstance(node, list):
        return [rewrite(item) for item in node]
    return node


partial = target.with_name(target.name + ".partial")
shutil.rmtree(partial, ignore_errors=True)
partial.mkdir(parents=True)
for path in source.glob("*.json"):
    (partial / path.name).write_text(json.dumps(rewrite(json.loads(path.read_text()))))
(partial / ".source").write_text(sys.argv[3])
shutil.rmtree(target, ignore_errors=True)
partial.rename(target)
PY
