//! The duty board: the web page the desk serves at `/` (SPEC §9, "The web board").
//!
//! A duty officer keeps one screen open all night: every open legal clock, nearest first,
//! ticking, and the two clicks that stop one. The board is a client of the desk's own API
//! (`/api/v1`), with the officer's bearer token, so it can do nothing the API would not let that
//! principal do.
//!
//! **Why plain files and no framework.** The whole front end is three text files (`index.html`,
//! `board.js`, `board.css`, about 50 KB together, no minification) compiled into the binary with
//! `include_str!`, so:
//! - nothing is fetched at run time (SOC networks are often air-gapped) and nothing is built:
//!   no Node toolchain, no `node_modules` lock file to audit, no built output drifting from its
//!   source — what is reviewed is what the browser runs;
//! - it uses only standard browser APIs (fetch with streaming bodies, `<dialog>`, the Clipboard
//!   API with an `execCommand` fallback), present in current Chromium, Firefox and Safari;
//! - one page with two views (the board, an incident) needs a few hundred lines of DOM code, less
//!   than a framework's own glue would be.
//!
//! **How the live stream authenticates.** `EventSource` cannot send an `Authorization` header,
//! and a token in the query string would land in access logs, proxy logs and browser history.
//! The board therefore reads `GET /api/v1/stream` with `fetch()`, bearer header and all, and
//! parses `text/event-stream` itself (twenty lines in `board.js`). One credential, one check,
//! nothing new on the server. The token is kept in `sessionStorage` (this tab only, gone when it
//! closes), never in a cookie — so there is no ambient credential for cross-site requests to
//! ride on, and the API needs no CSRF defence.
//!
//! **Untrusted text.** Titles, names and draft text come from alerts, which an attacker can
//! shape. The script only ever inserts them as text (`textContent`), and every page is served
//! with a Content-Security-Policy that allows scripts from the desk itself only (no inline
//! script), so a hostile title cannot run code in the officer's browser.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page (both views: the board and an incident, switched by the URL fragment).
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// All the behaviour: sign-in, the list, the countdowns, the live stream, actions, copy.
pub const BOARD_JS: &str = include_str!("assets/board.js");
pub const BOARD_CSS: &str = include_str!("assets/board.css");
pub const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// What the page may load and talk to: only the desk it came from. `frame-ancestors 'none'`
/// stops another site from framing the board to trick clicks on its action buttons.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The routes of the board's static assets, for any router state (the desk merges them into
/// its own router, next to `/api/v1`).
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/index.html",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/board/board.js",
            get(|| async { asset("text/javascript; charset=utf-8", BOARD_JS) }),
        )
        .route(
            "/board/board.css",
            get(|| async { asset("text/css; charset=utf-8", BOARD_CSS) }),
        )
        .route(
            "/board/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
}

/// One embedded asset with the headers every board response carries. `no-cache` (revalidate
/// each time) rather than a long max-age: after an upgrade the officer must get the new script
/// with the new API, and the files are small.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Air-gapped networks: the page must not reference anything outside the desk.
    #[test]
    fn assets_reference_nothing_outside_the_desk() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("board.js", BOARD_JS),
            ("board.css", BOARD_CSS),
        ] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(
                    !text.contains(needle),
                    "{name} references {needle}: every asset must come from the binary"
                );
            }
        }
    }

    /// The CSP forbids inline script; the page must not rely on any.
    #[test]
    fn page_has_no_inline_script() {
        let lower = INDEX_HTML.to_lowercase();
        assert_eq!(lower.matches("<script").count(), 1);
        assert!(lower.contains(r#"<script src="board/board.js" defer></script>"#));
        assert!(!lower.contains(" onclick=") && !lower.contains(" onload="));
    }

    /// Untrusted text must never be parsed as HTML.
    #[test]
    fn script_never_writes_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!BOARD_JS.contains(sink), "board.js uses {sink}");
        }
    }
}
