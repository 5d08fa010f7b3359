//! A real headless Chromium for the console's tests, driven through chromedriver's W3C
//! WebDriver REST protocol. The client is the few requests the tests need, over std's
//! TcpStream and serde_json (both already here): fantoccini or chromiumoxide would bring an
//! async HTTP stack (hyper, and a TLS stack by default) to compile on two cores for a
//! protocol that is a handful of JSON POSTs to a loopback port.
//!
//! A missing browser fails the test with the package to install: it is never skipped.

use serde_json::{json, Value as Json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for the page may take before the test fails: generous, it only proves
/// "not hanging" on a loaded two-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A chromedriver process with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the page, as WebDriver names it.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the console's browser tests need {path}: install Debian's `{package}` package \
                 (apt-get install chromium chromium-driver; .ci/run does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        browser.wait_for_driver();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let reply = call(&browser.addr, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("starting a Chromium session: {e}"));
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {reply}"))
            .to_string();
        browser
    }

    fn wait_for_driver(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(status) = call(&self.addr, "GET", "/status", None) {
                if status["ready"] == true {
                    return;
                }
            }
            if let Ok(Some(exit)) = self.driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at start: {exit}");
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{CHROMEDRIVER} did not answer on {} within {PATIENCE:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn session_call(&self, method: &str, what: &str, body: Option<&Json>) -> Json {
        let path = format!("/session/{}{what}", self.session);
        call(&self.addr, method, &path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {what}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page, returns its value.
    pub fn eval(&self, script: &str, args: &[Json]) -> Json {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        let path = format!("/session/{}/element", self.session);
        let body = json!({ "using": "css selector", "value": css });
        match call(&self.addr, "POST", &path, Some(&body)) {
            Ok(v) => v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|id| id.as_str())
                .map(|id| Element(id.to_string())),
            Err(_) => None,
        }
    }

    /// Waits until an element matches `css`.
    pub fn wait_for(&self, css: &str) -> Element {
        let start = Instant::now();
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no element matches {css:?} after {PATIENCE:?}; the page says: {}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `script` (a function body) returns something truthy, and returns it.
    pub fn wait_until(&self, what: &str, script: &str, args: &[Json]) -> Json {
        let start = Instant::now();
        loop {
            let v = self.eval(script, args);
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what}: not within {PATIENCE:?}; the page says: {}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element matching `css` once there is one; a live redraw can replace the
    /// element between finding and clicking it, so that is tried again.
    pub fn click_on(&self, css: &str) {
        let start = Instant::now();
        loop {
            let e = self.wait_for(css);
            let path = format!("/session/{}/element/{}/click", self.session, e.0);
            match call(&self.addr, "POST", &path, Some(&json!({}))) {
                Ok(_) => return,
                Err(why) if why.starts_with("stale element") && start.elapsed() < PATIENCE => {}
                Err(why) => panic!("clicking {css:?}: {why}"),
            }
        }
    }

    /// The text of the element matching `css`, once there is one.
    pub fn text_of(&self, css: &str) -> String {
        let v = self.wait_until(
            &format!("an element matching {css:?}"),
            "const e = document.querySelector(arguments[0]); return e ? [e.innerText] : null;",
            &[json!(css)],
        );
        v[0].as_str().unwrap_or_default().to_string()
    }

    pub fn text(&self, e: &Element) -> String {
        let v = self.session_call("GET", &format!("/element/{}/text", e.0), None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// The page's visible text, for failure messages.
    pub fn page_text(&self) -> String {
        let path = format!("/session/{}/execute/sync", self.session);
        let body =
            json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] });
        match call(&self.addr, "POST", &path, Some(&body)) {
            Ok(v) => v.as_str().unwrap_or_default().chars().take(3000).collect(),
            Err(e) => format!("<unreadable: {e}>"),
        }
    }

    /// Writes a PNG of the viewport to `to`.
    pub fn screenshot(&self, to: &Path) {
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().expect("a base64 screenshot"))
            .expect("the screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(to, png).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port for chromedriver")
}

/// One WebDriver request; the reply's `value`, or the WebDriver error as text.
fn call(addr: &str, method: &str, path: &str, body: Option<&Json>) -> Result<Json, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let raw = read_reply(&mut s)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {text:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let reply: Json =
        serde_json::from_str(&body).map_err(|e| format!("reply is not JSON ({e}): {body}"))?;
    let value = reply.get("value").cloned().unwrap_or(Json::Null);
    if head.split(' ').nth(1) != Some("200") {
        return Err(format!(
            "{}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or(&body)
        ));
    }
    Ok(value)
}

/// Reads one reply: chromedriver keeps the connection open after it despite
/// `Connection: close`, so the body ends at its `Content-Length` (written `Content-Length:N`),
/// or at the closing chunk, or when the peer closes.
fn read_reply(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("reading the reply: {e}"))?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&chunk[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length = head.lines().find_map(|l| {
            let v = l.strip_prefix("content-length:")?;
            v.trim().parse::<usize>().ok()
        });
        let body = raw.len() - end - 4;
        match length {
            Some(len) if body >= len => return Ok(raw),
            None if head.contains("chunked") && raw.ends_with(b"0\r\n\r\n") => return Ok(raw),
            _ => {}
        }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 (what WebDriver sends screenshots in), padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[test]
fn the_harness_drives_a_real_chromium() {
    let b = Browser::start();
    b.goto("data:text/html,<title>t</title><p id=x>hello</p>");
    let p = b.wait_for("#x");
    assert_eq!(b.text(&p), "hello");
    assert_eq!(b.eval("return 1 + 2", &[]), json!(3));
    assert!(b.find("#nope").is_none());
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
}
