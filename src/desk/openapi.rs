//! `/api/v1/openapi.json`: the API described in OpenAPI 3.1, written out by hand (the API is
//! small, and a hand-written document says why as well as what). A test checks that every route
//! of [`super::api::router`] is in it.

use serde_json::{json, Value};

/// Every path the document describes (checked against the router by a test).
pub const PATHS: [&str; 6] = [
    "/api/v1/incidents",
    "/api/v1/incidents/{id}",
    "/api/v1/incidents/{id}/commands",
    "/api/v1/stream",
    "/api/v1/me",
    "/api/v1/openapi.json",
];

fn error_responses(codes: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        let why = match *c {
            "400" => "Bad input; `field` names the field at fault.",
            "401" => "No token, or a token no principal holds.",
            "403" => "The principal's role may not send this command.",
            "404" => "No such incident.",
            "413" => "The body is over 64 KiB.",
            "503" => "Kafka did not acknowledge the command (nothing was written), or the desk has no signing key.",
            _ => "",
        };
        m.insert(
            c.to_string(),
            json!({"description": why, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(m)
}

pub fn document() -> Value {
    let timestamp = json!({"type": "string", "format": "date-time", "description": "RFC 3339, in output.utc_offset"});
    let level = json!({"type": "string", "enum": ["particularly_major", "major", "relatively_major", "general"]});
    let mut list_responses = error_responses(&["400", "401"]);
    list_responses["200"] = json!({"description": "The incidents, nearest open deadline first.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IncidentList"}}}});
    let mut show_responses = error_responses(&["401", "404"]);
    show_responses["200"] = json!({"description": "The incident in full.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IncidentDetail"}}}});
    let mut cmd_responses = error_responses(&["400", "401", "403", "404", "413", "503"]);
    cmd_responses["202"] = json!({"description": "Written to the commands topic (signed, `by` = the principal) and acknowledged by Kafka. The engine applies it or answers `command.rejected` moments later (see the stream and the timeline).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}});
    let mut stream_responses = error_responses(&["401"]);
    stream_responses["200"] = json!({"description": "Server-Sent Events: `hello` (once), `escalation` (an escalation event of docs/spec.md §6, as produced), `incident` (an incident's new list entry after a state change), `removed` (`{\"id\"}`: the incident left the state), `resync` (`{\"missed\": n}`: this client fell behind; fetch the list again).", "content": {"text/event-stream": {"schema": {"type": "string"}}}});
    let mut me_responses = error_responses(&["401"]);
    me_responses["200"] = json!({"description": "Who the token belongs to and what it may do.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Me"}}}});
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^INC-[0-9]{8}-[0-9a-f]{12}$"}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Klaxon duty desk",
            "version": "1",
            "description": "The open reporting clocks of every Klaxon instance, and the commands that stop them (docs/spec.md §9). Every request but this document needs `Authorization: Bearer <token>`; roles: viewer (read), duty_officer (+ ack, report_filed, resolve), lead (+ dismiss, regrade, merge). Countdowns (`seconds_remaining`) are computed from deadlines at the time of the answer; the view trails the engine by about the changelog flush (1 s)."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/incidents": {"get": {
                "summary": "List incidents, nearest open deadline first (then the newest).",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "closed", "all"], "default": "open"}, "description": "`open`: open incidents and any incident with a report still due (resolving does not stop a due report); `closed`: the rest."},
                    {"name": "level", "in": "query", "schema": {"type": "string"}, "description": "A level key, or several separated by commas."},
                    {"name": "operator", "in": "query", "schema": {"type": "string"}, "description": "Operator id."},
                    {"name": "province", "in": "query", "schema": {"type": "string"}, "description": "Operator province, e.g. 广东省."},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}
                ],
                "responses": list_responses
            }},
            "/api/v1/incidents/{id}": {"get": {
                "summary": "One incident: figures, evidence, pending timers, recipients, channels, the art. 7 draft and the timeline.",
                "parameters": [id_param.clone()],
                "responses": show_responses
            }},
            "/api/v1/incidents/{id}/commands": {"post": {
                "summary": "Send a command (docs/spec.md §2) about the incident. `by` is the principal and may not be given; `at` defaults to now. Or send it pre-signed (header `klaxon-signature`): then the body is the full command with `by` (= the principal), `incident_id` and `at`, and it is written untouched.",
                "parameters": [id_param, {"name": "klaxon-client", "in": "header", "required": false, "schema": {"type": "string", "enum": ["ctl"]}, "description": "`ctl` when sent by `klaxon ctl` (recorded as `via`)."},
                    {"name": "klaxon-signature", "in": "header", "required": false, "schema": {"type": "string", "pattern": "^ed25519:[^:]+:[A-Za-z0-9+/=]+$"}, "description": "A pre-signed command (`klaxon ctl --key`): `ed25519:<key id>:<base64 signature of the body bytes>` by a [[commands.keys]] key allowed to sign for the principal. The desk checks it (400 bad_signature, 403 principal_not_allowed) and writes the body and this header untouched; `via` becomes the key id."}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandRequest"}}}},
                "responses": cmd_responses
            }},
            "/api/v1/stream": {"get": {
                "summary": "Server-Sent Events: one per escalation event or incident change.",
                "responses": stream_responses
            }},
            "/api/v1/me": {"get": {
                "summary": "The signed-in principal, its role and the commands it may send.",
                "responses": me_responses
            }},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token whose SHA-256 is a `token_sha256` of `[[desk.principals]]`."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "field": {"type": "string", "description": "The field (or query parameter) at fault."}}},
                "Recipient": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
                "Report": {"type": "object", "properties": {
                    "kind": {"type": "string", "enum": ["initial", "follow_up", "supplement", "summary"]},
                    "label": {"type": "string", "description": "initial, follow_up.N, supplement or summary"},
                    "due_from": timestamp, "deadline": timestamp,
                    "seconds_remaining": {"type": "integer", "description": "deadline − now; negative when past"},
                    "filed_at": {"type": ["string", "null"], "description": "The `at` the filing claimed."},
                    "filed_received_at": {"type": "string", "description": "When Klaxon received the filing."},
                    "backdated": {"type": "boolean", "description": "The filing claimed a time earlier than its receipt by more than commands.backdate_tolerance."},
                    "filed_by": {"type": "string"}, "filed_via": {"type": "string"},
                    "channel": {"type": "string"}, "reference": {"type": "string"},
                    "overdue": {"type": "boolean"}, "filed_late": {"type": "boolean"},
                    "cancelled": {"type": "boolean"}, "outstanding": {"type": "boolean"},
                    "recipients": {"type": "array", "items": {"$ref": "#/components/schemas/Recipient"}}}},
                "IncidentSummary": {"type": "object", "properties": {
                    "id": {"type": "string"}, "title": {"type": ["string", "null"]},
                    "operator": {"type": "object", "properties": {"id": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}, "class": {"type": "string"}, "province": {"type": ["string", "null"]}}},
                    "level": level, "level_zh": {"type": "string"},
                    "status": {"type": "string", "enum": ["open", "resolved", "dismissed", "merged"]},
                    "opened_at": timestamp, "alert_count": {"type": "integer"}, "acknowledged": {"type": "boolean"},
                    "reports": {"type": "array", "items": {"$ref": "#/components/schemas/Report"}},
                    "nearest_deadline": {"type": ["string", "null"], "format": "date-time"},
                    "seconds_remaining": {"type": ["integer", "null"]}}},
                "IncidentList": {"type": "object", "properties": {
                    "now": timestamp, "count": {"type": "integer"},
                    "incidents": {"type": "array", "items": {"$ref": "#/components/schemas/IncidentSummary"}}}},
                "IncidentDetail": {"allOf": [{"$ref": "#/components/schemas/IncidentSummary"}, {"type": "object", "properties": {
                    "category": {"type": ["string", "null"]}, "correlation_key": {"type": "string"},
                    "asset": {"type": "object"}, "sources": {"type": "array", "items": {"type": "string"}},
                    "alert_ids": {"type": "array", "items": {"type": "string"}},
                    "last_alert_at": timestamp, "reportable_at": {"type": ["string", "null"]},
                    "override_level": {"type": ["array", "null"], "description": "[level, reason] of an analyst's regrade"},
                    "computed_level": level,
                    "figures": {"type": "array", "items": {"type": "object", "properties": {
                        "figure": {"type": "string"}, "minutes": {"type": "number"}, "ongoing": {"type": "boolean"},
                        "episodes": {"type": "array"}, "value": {"type": "number"}, "values": {"type": "array", "items": {"type": "string"}}}}},
                    "matched": {"type": "array", "description": "Evidence: indicator, value, threshold, level, unit."},
                    "guide_rows": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "For each matched indicator, the grading guide row it comes from (grading.toml `source`)."},
                    "timers": {"type": "array", "items": {"type": "object", "properties": {
                        "at": timestamp, "seconds_remaining": {"type": "integer"},
                        "kind": {"type": "string", "enum": ["crossing", "upgrade_warning", "report", "page", "expire"]}, "report": {"type": "string"}}}},
                    "recipients": {"type": "array", "items": {"$ref": "#/components/schemas/Recipient"}},
                    "channels": {"type": "array", "items": {"type": "object", "properties": {"kind": {"type": "string"}, "value": {"type": "string"}}}},
                    "draft": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
                        "item": {"type": "integer"}, "title": {"type": "string"}, "content": {"type": "string"}, "to_complete": {"type": "boolean"}}}}}},
                    "timeline": {"type": "array", "items": {"type": "object", "properties": {
                        "at": timestamp, "type": {"type": "string"}, "event_id": {"type": "string"},
                        "level": level, "report_kind": {"type": "string"}, "command": {"type": "string"},
                        "by": {"type": "string"}, "via": {"type": "string"},
                        "received_at": {"type": "string"}, "backdated": {"type": "boolean"}, "detail": {"type": "string"}}}}}}]},
                "CommandRequest": {"type": "object", "required": ["command"], "additionalProperties": false, "properties": {
                    "command": {"type": "string", "enum": crate::model::CommandName::NAMES, "description": "viewer: none; duty_officer: ack, report_filed, follow_up, resolve; lead: all."},
                    "partial": {"type": "boolean", "description": "report_filed: the report carried items （一）（二） only; a supplement (补报) falls due."},
                    "incident_id": {"type": "string", "description": "Optional; must equal the path's."},
                    "at": {"type": "string", "format": "date-time", "description": "Default: now. A filing whose `at` is earlier than its receipt by more than the tolerance is marked backdated."},
                    "report_kind": {"type": "string", "enum": ["initial", "follow_up", "supplement", "summary"]},
                    "channel": {"type": "string"}, "reference": {"type": "string"}, "note": {"type": "string"},
                    "reason": {"type": "string", "description": "Required for dismiss, regrade and follow_up."},
                    "level": {"type": "string", "description": "regrade: a level key, or `computed` to hand back to the figures."},
                    "into": {"type": "string", "description": "merge: the incident to merge into."}}},
                "Accepted": {"type": "object", "properties": {
                    "status": {"const": "accepted"}, "command": {"type": "object", "description": "The command as written (with by, via, at)."},
                    "topic": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"}, "note": {"type": "string"}}},
                "Me": {"type": "object", "properties": {
                    "name": {"type": "string"}, "role": {"type": "string", "enum": ["viewer", "duty_officer", "lead"]},
                    "commands": {"type": "array", "items": {"type": "string"}}, "can_write": {"type": "boolean"}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_is_described() {
        let doc = super::document();
        for p in super::PATHS {
            assert!(doc["paths"].get(p).is_some(), "{p} missing");
        }
        assert_eq!(
            doc["paths"].as_object().map(|m| m.len()),
            Some(super::PATHS.len())
        );
    }
}
