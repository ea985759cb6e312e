//! The routes under `/api/v1` (docs/spec.md §9). Every request but the OpenAPI document carries
//! `Authorization: Bearer <token>`. Errors are JSON: `{"error": "...", "field": "..."}` with
//! 400 (the field named), 401, 403, 404, 413 (a body over 64 KiB) or 503 (Kafka did not
//! acknowledge, or the desk has no signing key). A command is checked completely before one
//! record is written; it is either written whole or not at all.
//!
//! A command may come **pre-signed** (`klaxon ctl --key FILE --key-id ID`): the request carries
//! the `klaxon-signature` header over the body's exact bytes, and the body is the full docs/spec.md §2
//! command with `by` (which must be the token's principal), `incident_id` and `at`. The desk
//! checks it as any command, verifies the signature against `[[commands.keys]]` (the key must be
//! allowed to sign for that principal), and writes the body **untouched** with that header, so
//! the command is attributable to the principal's own key (`via` = its key id), and the engine
//! verifies it again. The desk's own key is not involved.

use super::auth::{Principal, Role};
use super::view::Filter;
use super::{Desk, StreamItem};
use crate::engine::IncidentId;
use crate::model::{Action, ActionFields, CommandName};
use crate::time::Timestamp;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The largest request body the desk reads.
pub const MAX_BODY: usize = 64 * 1024;

/// The header `klaxon ctl` sends, so that its commands carry `via: ctl`.
pub const CLIENT_HEADER: &str = "klaxon-client";

pub fn router(desk: Arc<Desk>) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(show))
        .route("/api/v1/incidents/{id}/commands", post(command))
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/me", get(me))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/{*rest}", get(not_found).post(not_found))
        .with_state(desk)
}

/// A JSON error naming the field at fault, if one is.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }
    fn field(field: &str, error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"klaxon\""),
            );
        }
        r
    }
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

impl Desk {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        route: &'static str,
    ) -> Result<Principal, ApiError> {
        let h = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        self.principals.authenticate(h).map_err(|e| {
            self.count(route, StatusCode::UNAUTHORIZED);
            ApiError::new(StatusCode::UNAUTHORIZED, e.message())
        })
    }

    fn count(&self, route: &'static str, status: StatusCode) {
        let class = match status.as_u16() {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.metrics
            .desk_requests
            .with_label_values(&[route, class])
            .inc();
    }

    fn answer<T: Serialize>(
        &self,
        route: &'static str,
        r: Result<(StatusCode, T), ApiError>,
    ) -> Response {
        match r {
            Ok((status, body)) => {
                self.count(route, status);
                json_response(status, &body)
            }
            Err(e) => {
                if e.status != StatusCode::UNAUTHORIZED {
                    self.count(route, e.status);
                }
                e.into_response()
            }
        }
    }
}

#[derive(Serialize)]
struct ListBody {
    now: String,
    count: usize,
    incidents: Vec<super::view::Summary>,
}

async fn list(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let r = (|| {
        desk.authenticate(&headers, "list")?;
        let filter: Filter = serde_urlencoded_like(q.as_deref().unwrap_or(""))?;
        let wanted = filter.check().map_err(|(f, e)| ApiError::field(f, e))?;
        let now = desk.clock.now();
        let offset = desk.config.settings.utc_offset();
        let incidents = desk
            .view
            .read()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"))?
            .list(&desk.config.ruleset, &wanted, now, offset);
        Ok((
            StatusCode::OK,
            ListBody {
                now: now.format(offset),
                count: incidents.len(),
                incidents,
            },
        ))
    })();
    desk.answer("list", r)
}

/// Reads the query string into a filter; an unknown or bad parameter is named.
fn serde_urlencoded_like(q: &str) -> Result<Filter, ApiError> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|_| ApiError::field("query", "not a valid query string"))?;
    axum::extract::Query::<Filter>::try_from_uri(&uri)
        .map(|axum::extract::Query(f)| f)
        .map_err(|e| {
            let text = e.body_text();
            let field = text
                .split('`')
                .nth(1)
                .filter(|_| text.contains("unknown field") || text.contains("field"))
                .unwrap_or("query")
                .to_string();
            ApiError {
                status: StatusCode::BAD_REQUEST,
                error: text,
                field: Some(field),
            }
        })
}

fn incident_id(given: &str) -> Result<IncidentId, ApiError> {
    given
        .parse::<IncidentId>()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no incident {given:?}")))
}

async fn show(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = (|| {
        desk.authenticate(&headers, "show")?;
        let iid = incident_id(&id)?;
        let now = desk.clock.now();
        let offset = desk.config.settings.utc_offset();
        let detail = desk
            .view
            .read()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "view unavailable"))?
            .show(&desk.config.ruleset, &iid, now, offset)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id}")))?;
        Ok((StatusCode::OK, detail))
    })();
    desk.answer("show", r)
}

#[derive(Serialize)]
struct Me {
    name: String,
    role: &'static str,
    /// The commands this principal may send.
    commands: Vec<&'static str>,
    /// Whether the desk can write commands at all (it has a signing key).
    can_write: bool,
}

const COMMANDS: &[&str] = crate::model::CommandName::NAMES;

async fn me(State(desk): State<Arc<Desk>>, headers: HeaderMap) -> Response {
    let r = desk.authenticate(&headers, "me").map(|p| {
        (
            StatusCode::OK,
            Me {
                role: p.role.key(),
                commands: COMMANDS
                    .iter()
                    .copied()
                    .filter(|c| Role::needed_for(c).is_some_and(|n| p.role >= n))
                    .collect(),
                name: p.name,
                can_write: desk.signer.is_some(),
            },
        )
    });
    desk.answer("me", r)
}

async fn openapi(State(desk): State<Arc<Desk>>) -> Response {
    desk.answer("openapi", Ok((StatusCode::OK, super::openapi::document())))
}

async fn not_found(State(desk): State<Arc<Desk>>) -> Response {
    desk.answer::<()>(
        "other",
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such endpoint (see /api/v1/openapi.json)",
        )),
    )
}

/// A command as the API takes it: docs/spec.md §2 without `by` (the desk sets it) and with `at`
/// optional (default: now).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: String,
    #[serde(default)]
    incident_id: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    report_kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    into: Option<String>,
    #[serde(default)]
    partial: Option<bool>,
    /// Only in a pre-signed command (refused otherwise, and checked against the token before
    /// this is read).
    #[serde(default, rename = "by")]
    _by: Option<String>,
}

/// The record the desk writes (field order is the order on the wire).
#[derive(Debug, Serialize)]
pub struct OutCommand {
    pub command: String,
    pub incident_id: String,
    pub at: String,
    pub by: String,
    /// `desk` / `ctl` when the desk signs; a pre-signed command's key id (what the engine
    /// records as its `via`; the body the desk writes then has none).
    pub via: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
}

#[derive(Serialize)]
struct Accepted {
    status: &'static str,
    command: OutCommand,
    topic: String,
    partition: i32,
    offset: i64,
    note: &'static str,
}

fn nonblank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Checks a command body completely; the error names the field.
fn check_command(
    desk: &Desk,
    principal: &Principal,
    id: &IncidentId,
    bytes: &[u8],
    via: &str,
    presigned: bool,
) -> Result<OutCommand, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::field("body", format!("not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(ApiError::field("body", "expected a JSON object"));
    };
    if presigned {
        // The signature covers these bytes: the desk can fill in nothing, so everything the
        // engine needs must be there, and `by` must be the one the token proves.
        match obj.get("by").and_then(|b| b.as_str()) {
            None => {
                return Err(ApiError::field(
                    "by",
                    "required in a signed command: your principal's name",
                ))
            }
            Some(by) if by != principal.name => {
                return Err(ApiError {
                    status: StatusCode::FORBIDDEN,
                    error: format!(
                        "a signed command's `by` must be the token's principal ({}), not {by:?}",
                        principal.name
                    ),
                    field: Some("by".into()),
                })
            }
            Some(_) => {}
        }
        for field in ["incident_id", "at"] {
            if obj.get(field).and_then(|v| v.as_str()).is_none() {
                return Err(ApiError::field(
                    field,
                    "required in a signed command (the desk cannot add it without breaking the signature)",
                ));
            }
        }
    } else if obj.contains_key("by") {
        return Err(ApiError::field(
            "by",
            "not allowed: the desk records the signed-in principal as `by`",
        ));
    }
    if obj.contains_key("via") {
        return Err(ApiError::field(
            "via",
            "not allowed: Klaxon records `via` (the desk, or the key that signed)",
        ));
    }
    let body: CommandBody = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." || path.is_empty() {
            inner.split('`').nth(1).unwrap_or("body").to_string()
        } else {
            path
        };
        ApiError::field(&field, inner)
    })?;
    let needed = Role::needed_for(&body.command).ok_or_else(|| {
        ApiError::field(
            "command",
            format!(
                "unknown command {:?} (expected one of {})",
                body.command,
                COMMANDS.join(", ")
            ),
        )
    })?;
    if principal.role < needed {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!(
                "{} ({}) may not send {}: it needs the {} role",
                principal.name,
                principal.role.key(),
                body.command,
                needed.key()
            ),
            field: Some("command".into()),
        });
    }
    let id_text = id.to_string();
    if let Some(given) = nonblank(&body.incident_id) {
        if given != id_text {
            return Err(ApiError::field(
                "incident_id",
                format!("{given} differs from the incident in the path ({id_text})"),
            ));
        }
    }
    let offset = desk.config.settings.utc_offset();
    let at = match nonblank(&body.at) {
        None => desk.clock.now(),
        Some(t) => Timestamp::parse_rfc3339(t).map_err(|e| ApiError::field("at", e.to_string()))?,
    };
    // The engine's own check of the fields each command needs (`reason` for dismiss, …), so the
    // desk answers 400 naming the field instead of the engine's `command.rejected` later.
    let name = body
        .command
        .parse::<CommandName>()
        .map_err(|e| ApiError::field("command", e))?;
    let action = Action::check(
        name,
        &ActionFields {
            report_kind: nonblank(&body.report_kind),
            partial: body.partial,
            reason: nonblank(&body.reason),
            level: nonblank(&body.level),
            into: nonblank(&body.into),
        },
    )
    .map_err(|p| ApiError::field(p.field(), p.detail()))?;
    if let Action::Merge { into } = &action {
        // The desk merges by id only: `@key` addressing is for tools that know keys, not ids.
        let target = into
            .parse::<IncidentId>()
            .map_err(|e| ApiError::field("into", e))?;
        if &target == id {
            return Err(ApiError::field(
                "into",
                "cannot merge an incident into itself",
            ));
        }
        let known = desk
            .view
            .read()
            .map(|v| v.contains(&target))
            .unwrap_or(false);
        if !known {
            return Err(ApiError::field("into", format!("no incident {into}")));
        }
    }
    Ok(OutCommand {
        command: body.command,
        incident_id: id_text,
        at: at.format(offset),
        by: principal.name.clone(),
        via: via.to_string(),
        channel: nonblank(&body.channel).map(str::to_owned),
        reference: nonblank(&body.reference).map(str::to_owned),
        note: nonblank(&body.note).map(str::to_owned),
        report_kind: nonblank(&body.report_kind).map(str::to_owned),
        reason: nonblank(&body.reason).map(str::to_owned),
        level: nonblank(&body.level).map(str::to_owned),
        into: nonblank(&body.into).map(str::to_owned),
        partial: body.partial.filter(|p| *p),
    })
}

async fn command(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let r = command_inner(&desk, &headers, &id, body).await;
    desk.answer("command", r)
}

async fn command_inner(
    desk: &Desk,
    headers: &HeaderMap,
    id: &str,
    body: Body,
) -> Result<(StatusCode, Accepted), ApiError> {
    let principal = desk.authenticate(headers, "command")?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} KiB", MAX_BODY / 1024),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    let refuse = |e: ApiError, command: &str| {
        let outcome = match e.status.as_u16() {
            403 => "forbidden",
            404 => "not_found",
            _ => "invalid",
        };
        desk.metrics
            .desk_commands
            .with_label_values(&[crate::telemetry::metrics::command_label(command), outcome])
            .inc();
        tracing::warn!(principal = %principal.name, role = principal.role.key(), command, incident_id = %id, outcome, error = %e.error, "desk refused a command");
        e
    };
    let name = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("command")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    let iid = incident_id(id).map_err(|e| refuse(e, &name))?;
    let presigned = headers
        .get(crate::signing::HEADER)
        .map(|v| v.as_bytes().to_vec());
    let via = match (&presigned, headers.get(CLIENT_HEADER).map(|v| v.as_bytes())) {
        (Some(_), _) => String::new(),
        (None, Some(b"ctl")) => "ctl".into(),
        (None, _) => "desk".into(),
    };
    let mut out = check_command(desk, &principal, &iid, &bytes, &via, presigned.is_some())
        .map_err(|e| refuse(e, &name))?;
    let known = desk.view.read().map(|v| v.contains(&iid)).unwrap_or(false);
    if !known {
        return Err(refuse(
            ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id}")),
            &name,
        ));
    }
    let (value, signature) = match presigned {
        // Checked here too, so that a command the engine would refuse is not written: the
        // answer names the problem now instead of a `command.rejected` a moment later.
        Some(header) => {
            let verdict = crate::signing::Verifier::from_settings(&desk.config.settings).verify(
                &bytes,
                Some(&header),
                Some(&principal.name),
            );
            match verdict {
                Ok(Some(key)) => out.via = key,
                Ok(None) => {}
                Err(r) => {
                    let status = match r {
                        crate::signing::Refusal::PrincipalNotAllowed => StatusCode::FORBIDDEN,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    return Err(refuse(
                        ApiError {
                            status,
                            error: match r {
                                crate::signing::Refusal::PrincipalNotAllowed => format!(
                                    "{}: the key may not sign for {} ([[commands.keys]] principals)",
                                    r.code(),
                                    principal.name
                                ),
                                _ => format!(
                                    "{}: the signature does not verify over the body with a key of [[commands.keys]]",
                                    r.code()
                                ),
                            },
                            field: Some(crate::signing::HEADER.into()),
                        },
                        &name,
                    ));
                }
            }
            let header = String::from_utf8(header).unwrap_or_default();
            (bytes.to_vec(), header)
        }
        None => {
            let Some(signer) = &desk.signer else {
                return Err(refuse(
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the desk has no signing key (desk.signing_key_file, desk.signing_key_id): it cannot write commands",
                    ),
                    &name,
                ));
            };
            let value = serde_json::to_vec(&out)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let signature = signer.sign(&value);
            (value, signature)
        }
    };
    let topic = desk.config.settings.topics.commands.clone();
    let key = out.incident_id.clone();
    let record = BaseRecord::to(&topic)
        .key(&key)
        .payload(&value)
        .timestamp(desk.clock.now().0)
        .headers(OwnedHeaders::new().insert(Header {
            key: crate::signing::HEADER,
            value: Some(signature.as_bytes()),
        }));
    match desk
        .producer
        .send_acknowledged(record, Duration::from_secs(10))
        .await
    {
        Ok((partition, offset)) => {
            desk.metrics
                .desk_commands
                .with_label_values(&[
                    crate::telemetry::metrics::command_label(&out.command),
                    "accepted",
                ])
                .inc();
            tracing::info!(principal = %principal.name, role = principal.role.key(), command = %out.command, incident_id = %out.incident_id, via = %out.via, "desk wrote a command");
            Ok((
                StatusCode::ACCEPTED,
                Accepted {
                    status: "accepted",
                    command: out,
                    topic,
                    partition,
                    offset,
                    note: "written and acknowledged by Kafka; the engine applies it (or answers command.rejected) within moments: watch the stream or the timeline",
                },
            ))
        }
        Err(e) => Err(refuse(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Kafka did not acknowledge the command, nothing was written: {e}"),
            ),
            &name,
        )),
    }
}

async fn stream(State(desk): State<Arc<Desk>>, headers: HeaderMap) -> Response {
    let principal = match desk.authenticate(&headers, "stream") {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    desk.count("stream", StatusCode::OK);
    let rx = desk.stream.subscribe();
    let closing = desk.closing.subscribe();
    let hello = serde_json::json!({
        "principal": principal.name,
        "now": desk.clock.now().format(desk.config.settings.utc_offset()),
    })
    .to_string();
    struct St {
        rx: tokio::sync::broadcast::Receiver<StreamItem>,
        closing: tokio::sync::watch::Receiver<bool>,
        hello: Option<String>,
    }
    let state = St {
        rx,
        closing,
        hello: Some(hello),
    };
    let s = futures_util::stream::unfold(state, |mut st| async move {
        if let Some(h) = st.hello.take() {
            return Some((
                Ok::<Event, Infallible>(Event::default().event("hello").data(h)),
                st,
            ));
        }
        if *st.closing.borrow() {
            return None;
        }
        let item = tokio::select! {
            _ = st.closing.changed() => return None,
            item = st.rx.recv() => item,
        };
        let ev = match item {
            Ok(item) => Event::default().event(item.event).data(&*item.data),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("resync")
                .data(format!("{{\"missed\":{n}}}")),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), st))
    });
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
