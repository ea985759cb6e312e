//! The web board's files (docs/spec.md §9), compiled into the binary: `GET /` serves `index.html`,
//! `GET /board/{file}` the rest. Nothing comes from a CDN (SOC networks are often air-gapped).
//!
//! **Hook for the board:** put the files in `src/desk/board/` and list each in [`FILES`] with
//! its content type; nothing else needs to change. The board talks to the API under `/api/v1`
//! (described by `/api/v1/openapi.json`) with `Authorization: Bearer <token>`; `/api/v1/me`
//! tells it the principal, role and the commands that role may send; the stream
//! (`/api/v1/stream`, Server-Sent Events) is read with `fetch` so the header can be sent.
//!
//! **Why plain files and no framework.** The board is three text files — `index.html`,
//! `board.js` (one vanilla script) and `board.css`, about 60 KB together, 19 KB gzipped, not
//! minified — so nothing is built or downloaded, at build time or at run time: no Node
//! toolchain, no `node_modules` lock file to audit, no built output drifting from its source;
//! what is reviewed is what the browser runs. It uses only standard browser APIs (fetch with
//! streamed bodies, `<dialog>`, the Clipboard API with an `execCommand` fallback), present in
//! current Chromium, Firefox and Safari; one page with two views (the board, an incident) needs
//! less code than a framework's own glue would.
//!
//! **The token.** Kept in `sessionStorage` (this tab only, gone when it closes), sent as the
//! bearer header — for the stream too, which is why it is read with `fetch` and not
//! `EventSource` (that cannot send headers, and a token in the URL would land in access and proxy
//! logs). Never a cookie, so there is no ambient credential for a cross-site request to ride on.
//!
//! **Untrusted text.** Titles, names and draft text come from alerts, which an attacker can
//! shape. The script only ever inserts them as text (`textContent`), and the board is served
//! with a Content-Security-Policy allowing scripts from the desk only — no inline script — and
//! no framing (no clickjacking of the action buttons).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// `(name, content type, bytes)` of every board file.
pub const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("board/index.html"),
    ),
    (
        "board.js",
        "text/javascript; charset=utf-8",
        include_bytes!("board/board.js"),
    ),
    (
        "board.css",
        "text/css; charset=utf-8",
        include_bytes!("board/board.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("board/favicon.svg"),
    ),
];

/// What a board page may load and talk to: only the desk it came from.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route(
            "/board/{file}",
            get(|Path(f): Path<String>| async move { file(&f) }),
        )
}

/// `no-cache` (revalidate every time) rather than a long max-age: after an upgrade the officer
/// must get the new script along with the new API, and the files are small.
fn file(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> &'static str {
        let (_, _, bytes) = FILES
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not in FILES"));
        std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Air-gapped networks: nothing may be fetched from outside the desk.
    #[test]
    fn the_board_references_nothing_outside_the_desk() {
        for name in ["index.html", "board.js", "board.css"] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(
                    !text(name).contains(needle),
                    "{name} references {needle}: every asset must come from the binary"
                );
            }
        }
    }

    /// Every file the page loads is served.
    #[test]
    fn every_file_the_page_loads_is_embedded() {
        for referenced in ["board/board.js", "board/board.css", "board/favicon.svg"] {
            assert!(text("index.html").contains(referenced), "{referenced}");
            let name = referenced.trim_start_matches("board/");
            assert!(FILES.iter().any(|(n, _, _)| *n == name), "{name}");
        }
    }

    /// The CSP forbids inline script; the page must not rely on any.
    #[test]
    fn the_page_has_no_inline_script() {
        let page = text("index.html").to_lowercase();
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains(r#"<script src="board/board.js" defer></script>"#));
        assert!(!page.contains(" onclick=") && !page.contains(" onload="));
    }

    /// Untrusted alert text must never be parsed as HTML.
    #[test]
    fn the_script_never_writes_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text("board.js").contains(sink), "board.js uses {sink}");
        }
    }

    /// The token lives in the tab's session only: never localStorage, never a cookie.
    #[test]
    fn the_token_is_kept_for_the_tab_only() {
        let js = text("board.js");
        assert!(js.contains("sessionStorage.setItem(TOKEN_KEY"));
        assert!(!js.contains("localStorage.setItem(TOKEN_KEY"));
        assert!(!js.contains("document.cookie"));
    }
}
