#!/usr/bin/env bash
# The CRD and Grafana dashboard JSON Schemas of the deploy checks, built from pinned registry packages into <tools>.
set -euo pipefail
tools=${1:?usage: schemas.sh <absolute path of .cache/tools>}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Maven io.strimzi:api holds the KafkaTopic model; Strimzi's own CrdGenerator turns it into the CRD (v1beta2 and v1).
# crd-generator 0.45.0 is the newest release that runs on Java 17 (1.x needs Java 21).
strimzi_api=0.51.0
strimzi_crd_generator=0.45.0
# npm @kubernetes-models/prometheus-operator 4.0.0 is the last release shipping the CRD schemas as JSON (Prometheus
# Operator v0.57.0's CRDs); later ones ship only compiled validators.
prometheus_models=4.0.0
# npm @grafana/schema: Grafana's dashboard types, turned into a draft-07 JSON Schema by ts-json-schema-generator.
grafana_schema=13.2.3
ts_json_schema_generator=2.9.0
typescript=5.9.3
crds=$tools/crd-schemas
grafana=$tools/grafana-schema
stamp="io.strimzi:api:$strimzi_api io.strimzi:crd-generator:$strimzi_crd_generator"
stamp+=" @kubernetes-models/prometheus-operator@$prometheus_models @grafana/schema@$grafana_schema"
stamp+=" ts-json-schema-generator@$ts_json_schema_generator typescript@$typescript"
if [[ -f $tools/.schemas-source ]] && [[ $(<"$tools/.schemas-source") == "$stamp" ]]; then
  exit 0
fi
python=$repo/.venv/bin/python
[[ -x $python ]] || { echo "schemas.sh: $python is missing: run make install first" >&2; exit 1; }
for tool in java mvn npm; do
  command -v $tool >/dev/null || { echo "schemas.sh: $tool is needed to fetch the schemas" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Strimzi KafkaTopic CRD: resolve the two artifacts' runtime classpath with a throwaway pom, then run the generator.
cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$strimzi_api</version></dependency>
    <dependency>
      <groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$strimzi_crd_generator</version>
    </dependency>
  </dependencies>
</project>
EOF
mvn -B -q -Dstyle.color=never -f "$work/pom.xml" dependency:build-classpath \
  -Dmdep.outputFile="$work/classpath" -Dmdep.includeScope=runtime
java -cp "$(<"$work/classpath")" io.strimzi.crdgenerator.CrdGenerator --yaml --target-kube 1.16+ --crd-api-version v1 \
  --api-versions v1beta2,v1 --storage-version v1beta2 \
  "io.strimzi.api.kafka.model.topic.KafkaTopic=$work/kafkatopic-crd.yaml" 2>&1 | { grep -v '^SLF4J' || true; } >&2

# Prometheus Operator schemas and Grafana's types, with the generator, from npm.
npm install --silent --no-audit --no-fund --no-save --prefix "$work/npm" \
  "@kubernetes-models/prometheus-operator@$prometheus_models" "@grafana/schema@$grafana_schema" \
  "ts-json-schema-generator@$ts_json_schema_generator" "typescript@$typescript"
modules=$work/npm/node_modules
mkdir -p "$work/grafana"
"$modules/.bin/ts-json-schema-generator" --no-type-check --type Dashboard \
  --path "$modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts" \
  --out "$work/grafana/dashboard.jsonschema.json"

"$python" - "$work" "$modules/@kubernetes-models/prometheus-operator" <<'PY'
"""Write the CRD schemas as kubeconform reads them: {group}/{kind}_{version}.json, strict like openapi2jsonschema."""
import json, pathlib, re, sys
import yaml

work, models = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out = work / "crds"


def strict(node, root=True):
    """Forbid unknown fields in every object with properties below the root; int-or-string as kubeconform has it."""
    if isinstance(node, list):
        return [strict(item, False) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    # Only a boolean is the keyword: "nullable" is also a field name inside "properties".
    fixed = {key: strict(value, False) for key, value in node.items() if not (key == "nullable" and value is True)}
    if not root and isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        fixed["additionalProperties"] = False
    return fixed


def write(group, kind, version, schema):
    path = out / group / f"{kind.lower()}_{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(strict(schema), indent=2))


crd = yaml.safe_load((work / "kafkatopic-crd.yaml").read_text())
for version in crd["spec"]["versions"]:
    write(crd["spec"]["group"], crd["spec"]["names"]["kind"], version["name"], version["schema"]["openAPIV3Schema"])

# kubernetes-models keeps each CRD version's schema as a JSON object literal in monitoring.coreos.com/<version>/<Kind>.js.
for module in sorted(models.glob("monitoring.coreos.com/v*/*.js")):
    found = re.search(r"^const schema = (\{.*?^\});$", module.read_text(), re.DOTALL | re.MULTILINE)
    if found and module.stem != "index":
        schema = json.loads(found[1])
        schema["properties"]["metadata"] = {"type": "object"}  # a $ref to their ObjectMeta schema, as the CRD has none
        write("monitoring.coreos.com", module.stem, module.parent.name, schema)
for wanted in ("kafka.strimzi.io/kafkatopic_v1beta2", "monitoring.coreos.com/servicemonitor_v1"):
    assert (out / f"{wanted}.json").is_file(), f"{wanted} was not produced"
PY

rm -rf "$crds" "$grafana"
mv "$work/crds" "$crds"
mv "$work/grafana" "$grafana"
echo "$stamp" >"$tools/.schemas-source"
