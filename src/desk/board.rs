//! The web board's files (SPEC §9), compiled into the binary: `GET /` serves `index.html`,
//! `GET /board/{file}` the rest. Nothing comes from a CDN (SOC networks are often air-gapped).
//!
//! **Hook for the board:** put the files in `src/desk/board/` and list each in [`FILES`] with
//! its content type; nothing else needs to change. The board talks to the API under `/api/v1`
//! (described by `/api/v1/openapi.json`) with `Authorization: Bearer <token>`; `/api/v1/me`
//! tells it the principal, role and the commands that role may send; the stream
//! (`/api/v1/stream`, Server-Sent Events) is read with `fetch` so the header can be sent.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// `(name, content type, bytes)` of every board file.
pub const FILES: &[(&str, &str, &[u8])] = &[(
    "index.html",
    "text/html; charset=utf-8",
    include_bytes!("board/index.html"),
)];

pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route(
            "/board/{file}",
            get(|Path(f): Path<String>| async move { file(&f) }),
        )
}

fn file(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}
