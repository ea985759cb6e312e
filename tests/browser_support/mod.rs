//! A real headless Chromium for the board's browser tests: Debian's `chromium` and
//! `chromium-driver`, obtained by `scripts/chromium.sh` (which installs them when missing), driven
//! over WebDriver by `fantoccini`. Each [`Browser`] starts its own chromedriver on a free port
//! and a browser with a fresh profile; both end when it is dropped.
//!
//! Screenshots go to `target/board-screenshots/` (git-ignored), the artifacts of a run.
#![allow(dead_code)]

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The board is designed for a duty screen of this size (the "readable at 1366×768").
pub const VIEWPORT: (u32, u32) = (1366, 768);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where screenshots go: `$CARGO_TARGET_DIR` or `target/`, under `board-screenshots/`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("board-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// `(chromium, chromedriver)` paths from `scripts/chromium.sh`, which installs Debian's packages
/// when they are missing. Panics with the script's explanation when it cannot provide them.
pub fn binaries() -> (String, String) {
    static PATHS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PATHS
        .get_or_init(|| {
            let out = Command::new(root().join("scripts/chromium.sh"))
                .output()
                .expect("run scripts/chromium.sh");
            assert!(
                out.status.success(),
                "scripts/chromium.sh could not provide Chromium: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or_else(|| panic!("scripts/chromium.sh printed no {k}: {text}"))
                    .to_string()
            };
            (get("CHROMIUM="), get("CHROMEDRIVER="))
        })
        .clone()
}

/// One chromedriver and one headless Chromium session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let (chromium, chromedriver) = binaries();
        let port = super::kafka_support::free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that ending the group also ends the Chromium processes
            // it started (a killed chromedriver leaves them running otherwise).
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {chromedriver}: {e}"));
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-US".into(),
            format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from {chromedriver} on {url}: {e}"),
            }
        };
        let mut b = Browser {
            client,
            driver,
            _profile: profile,
        };
        b.fit_viewport().await;
        b
    }

    /// Headless windows count their (invisible) frame in the window size: make the page itself
    /// exactly the duty screen's size.
    async fn fit_viewport(&mut self) {
        for _ in 0..3 {
            let inner = self
                .client
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .expect("read viewport");
            let w = inner[0].as_u64().unwrap_or(0) as u32;
            let h = inner[1].as_u64().unwrap_or(0) as u32;
            if (w, h) == VIEWPORT {
                return;
            }
            let (ow, oh) = self
                .client
                .get_window_size()
                .await
                .map(|(w, h)| (w as u32, h as u32))
                .expect("window size");
            let _ = self
                .client
                .set_window_size(ow + VIEWPORT.0 - w, oh + VIEWPORT.1 - h)
                .await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs a script and returns its value.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Clicks the element `css` names, finding it again if the page re-rendered it meanwhile
    /// (live updates replace nodes).
    pub async fn click(&self, css: &str) {
        let mut last = None;
        for _ in 0..20 {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => match self.center(&e).await.and(e.click().await) {
                    Ok(()) => return,
                    Err(err) => last = Some(err.to_string()),
                },
                Err(err) => last = Some(err.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let shot = self.screenshot(&format!("click-{}", slug(css))).await;
        panic!(
            "cannot click {css}: {}; screenshot {}",
            last.unwrap_or_default(),
            shot.display()
        );
    }

    /// Scrolls `e` to the middle of the window: WebDriver only makes it "in view", which can be
    /// under the sticky header, where a click would land on the header instead.
    async fn center(&self, e: &Element) -> Result<(), fantoccini::error::CmdError> {
        let arg = serde_json::to_value(e).map_err(fantoccini::error::CmdError::Json)?;
        self.client
            .execute("arguments[0].scrollIntoView({block: 'center'})", vec![arg])
            .await
            .map(|_| ())
    }

    /// Types into the element `css` names (WebDriver key codes allowed), as [`Browser::click`].
    pub async fn type_into(&self, css: &str, text: &str) {
        let mut last = None;
        for _ in 0..20 {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => match e.send_keys(text).await {
                    Ok(()) => return,
                    Err(err) => last = Some(err.to_string()),
                },
                Err(err) => last = Some(err.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot type into {css}: {}", last.unwrap_or_default());
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
            .is_empty()
    }

    /// Waits until `script` (a JS expression) is truthy; returns its value. Panics with `what`
    /// and a screenshot's path after `timeout`.
    pub async fn wait_for(&self, what: &str, expr: &str, timeout: Duration) -> serde_json::Value {
        let script = format!("return ({expr});");
        let deadline = Instant::now() + timeout;
        loop {
            let v = self
                .client
                .execute(&script, vec![])
                .await
                .unwrap_or(serde_json::Value::Null);
            let truthy = match &v {
                serde_json::Value::Null => false,
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("timeout-{}", slug(what))).await;
                let text = self
                    .js("return document.body.innerText")
                    .await
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                panic!(
                    "timed out after {timeout:?} waiting for {what} ({expr}); screenshot {}; page text:\n{text}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG under `target/board-screenshots/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = artifacts_dir().join(format!("{name}.png"));
        match self.client.screenshot().await {
            Ok(png) => {
                if let Err(e) = std::fs::write(&path, png) {
                    eprintln!("screenshot {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("screenshot {name}: {e}"),
        }
        path
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.end_driver();
    }

    /// Ends chromedriver and every process in its group (the browsers it started).
    fn end_driver(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.end_driver();
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
