//! The end-to-end fixture: a display (Xvfb when none is set), `tauri-driver` on free ports, and
//! a small W3C WebDriver client over HTTP, so the tests drive the real app window.
//!
//! On failure the fixture prints the data directory, the driver's log and the screenshot path.
//!
//! A run leaves no process behind: `tauri-driver` starts in a process group of its own, with the
//! `WebKitWebDriver` it starts for each session (and the app that one starts), and the whole
//! group is stopped when the test is done with it, or when the test process ends however it
//! ends; the Xvfb the fixture starts is stopped when the test process ends.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for something on screen lasts before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One window at a time: two WebKit windows at once on a 2-core machine make timings flaky.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The X display the app opens its window on: the caller's `DISPLAY`, or an Xvfb started once
/// for this test process.
fn display() -> String {
    static DISPLAY: OnceLock<String> = OnceLock::new();
    DISPLAY
        .get_or_init(|| {
            if let Ok(display) = std::env::var("DISPLAY") {
                if !display.is_empty() {
                    return display;
                }
            }
            let number = (90..140).find(|number| !Path::new(&format!("/tmp/.X{number}-lock")).exists()).expect("a free display");
            let display = format!(":{number}");
            assert!(Command::new("sh").args(["-c", "command -v Xvfb"]).stdout(Stdio::null()).status().is_ok_and(|status| status.success()), "Xvfb is not installed: run scripts/setup.sh");
            // A static is never dropped, so the server cannot be stopped from a destructor: a
            // small shell starts it and stops it once this test process has ended.
            let script = format!(
                "Xvfb {display} -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 & server=$!; \
                 while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $server",
                parent = std::process::id()
            );
            Command::new("sh").args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("sh starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !Path::new(&format!("/tmp/.X11-unix/X{number}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            display
        })
        .clone()
}

fn tauri_driver() -> PathBuf {
    if let Ok(path) = std::env::var("TAURI_DRIVER") {
        return PathBuf::from(path);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let installed = home.join("bin/tauri-driver");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("tauri-driver")
    }
}

/// The app's window under test, with its own data directory, driven through `tauri-driver`.
pub struct App {
    driver: Child,
    driver_log: PathBuf,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    /// The app's data directory (a temporary directory the test owns).
    pub data_dir: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

/// The device passphrase the end-to-end tests start the app with.
pub const PASSPHRASE: &str = "e2e-passphrase-2024";

/// Opens a store the app has used (encrypted: unlocked with [`PASSPHRASE`]) or a plain one a
/// test prepared before the app's first start.
pub fn open_store(path: &Path) -> furrow::Store {
    match furrow::encryption::lock_state(path).unwrap() {
        furrow::encryption::Lock::Locked => furrow::encryption::unlock(path, PASSPHRASE).map(|(store, _key)| store).unwrap(),
        _ => furrow::Store::open(&furrow::OpenOptions::file(path)).unwrap(),
    }
}

impl App {
    /// Starts the app on `data_dir`, unlocked with [`PASSPHRASE`] (set up with it on a first
    /// start, a plain store encrypted), as the demo starts.
    pub fn start(data_dir: &Path) -> App {
        App::launch(data_dir, Some(PASSPHRASE))
    }

    /// Starts the app on `data_dir` with no passphrase given: the window asks for one.
    pub fn start_locked(data_dir: &Path) -> App {
        App::launch(data_dir, None)
    }

    fn launch(data_dir: &Path, passphrase: Option<&str>) -> App {
        let serial = serial();
        let port = free_port();
        let native_port = free_port();
        let driver_log = data_dir.join(format!("tauri-driver-{port}.log"));
        let log = std::fs::File::create(&driver_log).unwrap();
        // Its own process group, so that stopping it stops the WebKitWebDriver it starts too.
        let driver = Command::new(tauri_driver())
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .env("DISPLAY", display())
            // The app inherits it through the driver; empty means "ask in the window".
            .env(furrow_app::state::PASSPHRASE_VARIABLE, passphrase.unwrap_or_default())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("tauri-driver is not installed: run scripts/setup.sh");
        // Should this process end without dropping the fixture (killed, or aborted), the group is
        // stopped all the same.
        let watchdog = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {group} 2>/dev/null; do sleep 1; done; kill -TERM -{group} 2>/dev/null",
            parent = std::process::id(),
            group = driver.id()
        );
        // The watchdog has a group of its own too, so a signal to the test's group (Ctrl-C, a
        // timeout) cannot stop it before it has done its work.
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sh starts");
        // Starting a debug build of the window can take minutes on a loaded two-core machine.
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not start; log in {}", driver_log.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        // tauri-driver answers before the WebKitWebDriver it started listens; a session asked for
        // in between fails with a refused connection, so wait for that one too.
        while std::net::TcpStream::connect(("127.0.0.1", native_port)).is_err() {
            assert!(Instant::now() < deadline, "WebKitWebDriver did not start; log in {}", driver_log.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {"tauri:options": {
            "application": env!("CARGO_BIN_EXE_furrow-app"),
            "args": ["--data-dir", data_dir.display().to_string()],
        }}}});
        // A session start that fails under load is tried again (at most three times) before the
        // test gives up, with the driver's log named in the failure.
        let mut last_answer = String::new();
        let mut session = None;
        for _ in 0..3 {
            match http.post(format!("{base}/session")).json(&capabilities).send().and_then(|response| response.json::<Value>()) {
                Ok(answer) => match answer["value"]["sessionId"].as_str() {
                    Some(id) => {
                        session = Some(id.to_owned());
                        break;
                    }
                    None => last_answer = answer.to_string(),
                },
                Err(error) => last_answer = error.to_string(),
            }
        }
        let session = session.unwrap_or_else(|| panic!("no session: {last_answer}; driver log in {}", driver_log.display()));
        App { driver, driver_log, base, session, http, data_dir: data_dir.to_owned(), _serial: serial }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn check(&self, answer: Value, what: &str) -> Value {
        if let Some(error) = answer["value"].get("error") {
            panic!("{what}: {error} {}; data dir {}", answer["value"]["message"], self.data_dir.display());
        }
        answer["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let answer: Value = self.http.post(self.url(path)).json(&body).send().unwrap().json().unwrap();
        self.check(answer, path)
    }

    fn get(&self, path: &str) -> Value {
        let answer: Value = self.http.get(self.url(path)).send().unwrap().json().unwrap();
        self.check(answer, path)
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// The element matching `css` now, if any.
    pub fn try_find(&self, css: &str) -> Option<String> {
        let answer: Value = self
            .http
            .post(self.url("/element"))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .ok()?
            .json()
            .ok()?;
        answer["value"][ELEMENT_KEY].as_str().map(str::to_owned)
    }

    /// Waits for the element matching `css`.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(element) = self.try_find(css) {
                return element;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("failure-{}", chrono::Local::now().format("%H%M%S")));
                panic!("no element {css} after {PATIENCE:?}; screenshot {}; data dir {}", shot.display(), self.data_dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.post(&format!("/element/{element}/click"), json!({}));
    }

    /// Replaces the text of the input matching `css` by typing `text`.
    pub fn type_into(&self, css: &str, text: &str) {
        if text.is_empty() {
            return self.set_value(css, "");
        }
        let element = self.find(css);
        self.post(&format!("/element/{element}/clear"), json!({}));
        self.post(&format!("/element/{element}/value"), json!({"text": text}));
        // Typing Han characters depends on the driver's key tables; when it could not type
        // them, put the text in as an input method would, with an input event.
        if self.script("return document.querySelector(arguments[0]).value", json!([css])) != json!(text) {
            self.set_value(css, text);
        }
    }

    /// Presses Enter in the element matching `css`, as a user finishing a form would.
    pub fn press_enter(&self, css: &str) {
        let element = self.find(css);
        self.post(&format!("/element/{element}/value"), json!({"text": "\u{E007}"}));
    }

    /// Sets the value of the input matching `css` and sends the input event a user's edit
    /// sends (for date pickers, whose typed form depends on the locale).
    pub fn set_value(&self, css: &str, value: &str) {
        self.find(css);
        self.script(
            "const input = document.querySelector(arguments[0]);
             input.value = arguments[1];
             input.dispatchEvent(new Event('input', {bubbles: true}));
             input.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([css, value]),
        );
    }

    /// Chooses the option with `value` in the select matching `css` (the first non-empty
    /// option when `value` is empty), as a user's pick would, with a change event.
    pub fn choose(&self, css: &str, value: &str) {
        self.find(css);
        self.script(
            "const select = document.querySelector(arguments[0]);
             const option = arguments[1] ? [...select.options].find(o => o.value === arguments[1]) : select.options[1];
             select.value = option.value;
             select.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([css, value]),
        );
    }

    /// The visible text of the element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.get(&format!("/element/{element}/text")).as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the text of the element matching `css` satisfies `test`; returns it.
    pub fn wait_text(&self, css: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text(css);
            if test(&text) {
                return text;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("failure-{}", chrono::Local::now().format("%H%M%S")));
                panic!("{css} shows {text:?}; screenshot {}; data dir {}", shot.display(), self.data_dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `script` returns true.
    pub fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.script(script, json!([])) != json!(true) {
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("failure-{}", chrono::Local::now().format("%H%M%S")));
                panic!("waited for {what}; screenshot {}; data dir {}", shot.display(), self.data_dir.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pending-change count the sync indicator shows.
    pub fn pending(&self) -> i64 {
        self.text("[data-testid=pending]").chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(-1)
    }

    /// Resizes the window.
    pub fn resize(&self, width: u32, height: u32) {
        // Some WebDriver servers refuse; the screenshots then show the default size.
        let _ = self.http.post(self.url("/window/rect")).json(&json!({"width": width, "height": height})).send();
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Saves a PNG of the window to `artifacts/screenshots/{name}.png` and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts/screenshots");
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join(format!("{name}.png"));
        // WebKit hands out the last composited frame: let two frames paint first, so the
        // picture shows what the test just checked rather than the screen before it.
        let _ = self.http.post(self.url("/execute/async")).json(&json!({
            "script": "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => done(true), 250)));",
            "args": []
        })).send();
        std::thread::sleep(Duration::from_millis(250));
        if let Ok(response) = self.http.get(self.url("/screenshot")).send() {
            if let Ok(answer) = response.json::<Value>() {
                if let Some(data) = answer["value"].as_str() {
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
                        std::fs::write(&path, bytes).unwrap();
                    }
                }
            }
        }
        path
    }

    /// The process ids of the app and its web processes (for memory figures).
    pub fn processes(&self) -> Vec<(u32, String)> {
        let marker = self.data_dir.display().to_string();
        let mut found = Vec::new();
        let mut app_pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let mut command = String::new();
            if std::fs::File::open(format!("/proc/{pid}/cmdline")).and_then(|mut file| file.read_to_string(&mut command)).is_err() {
                continue;
            }
            if command.contains("furrow-app") && command.contains(&marker) {
                app_pids.push(pid);
                found.push((pid, "furrow-app".to_owned()));
            }
        }
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
            let parent: u32 = status.lines().find_map(|line| line.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            let name = status.lines().find_map(|line| line.strip_prefix("Name:")).unwrap_or("").trim().to_owned();
            if app_pids.contains(&parent) {
                found.push((pid, name));
            }
        }
        found
    }

    /// Ends the session (closing the window) and stops the driver and everything it started.
    pub fn quit(self) {
        self.end_session();
        // Dropping stops the driver's process group.
    }

    /// Asks the driver to end the session, which closes the window. The driver does not always
    /// answer once the window is gone, so the wait is short; the process group is stopped after.
    fn end_session(&self) {
        let _ = self.http.delete(self.url("")).timeout(Duration::from_secs(10)).send();
    }

    /// Stops the driver's process group: the driver, the WebKitWebDriver it started and the app
    /// that one started; politely first, then for good.
    fn stop_driver(&mut self) {
        // `kill -s SIGNAL -- -GROUP`: without the `--`, procps' kill reads "-GROUP" as an option
        // and signals nothing.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-s", "TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && group_alive(self.driver.id()) {
            let _ = self.driver.try_wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.wait();
    }
}

/// Whether any process of the group `group` is still running.
fn group_alive(group: u32) -> bool {
    std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok).any(|entry| {
        std::fs::read_to_string(entry.path().join("stat")).ok().is_some_and(|stat| {
            // The fields after the command name: state, parent, process group, ...
            let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields.get(2).and_then(|value| value.parse::<u32>().ok()) == Some(group) && fields.first() != Some(&"Z")
        })
    })
}

impl Drop for App {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("tauri-driver log: {}", self.driver_log.display());
            self.end_session();
        }
        self.stop_driver();
    }
}

/// The resident memory of a process in kibibytes.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status.lines().find_map(|line| line.strip_prefix("VmRSS:")).map(|value| value.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

impl App {
    /// Gives the file input matching `css` these files, as a user's pick in the file chooser
    /// would: WebDriver's "send keys" with the paths, one a line.
    pub fn choose_files(&self, css: &str, paths: &[&Path]) {
        let element = self.find(css);
        let text = paths.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join("\n");
        self.post(&format!("/element/{element}/value"), json!({"text": text}));
    }

    /// Sends keys to the element matching `css` without clearing it first (`\u{E007}` is Enter,
    /// `\u{E00C}` Escape).
    pub fn send_keys(&self, css: &str, keys: &str) {
        let element = self.find(css);
        self.post(&format!("/element/{element}/value"), json!({"text": keys}));
    }
}

/// A local `furrow-server` for end-to-end tests of the platform's side: its own data directory,
/// the demo villages and assistant, and an admin token for the platform endpoints.
pub struct PlatformServer {
    binary: PathBuf,
    data_dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The token of the `/admin/v1` endpoints.
    pub admin_token: String,
    process: Option<Child>,
}

impl PlatformServer {
    /// The demo villages the assistant is assigned to.
    pub const VILLAGES: [(&'static str, &'static str); 2] = [("530724100201", "演示·青山村"), ("530724100202", "演示·石门村")];
    /// The assistant's user name and password.
    pub const ACCOUNT: (&'static str, &'static str) = ("demo", "qingshan-walnut-2024");

    /// Sets up and starts a server on a free port (building `furrow-server` when it is missing).
    pub fn new() -> PlatformServer {
        let binary = Path::new(env!("CARGO_BIN_EXE_furrow-app")).with_file_name("furrow-server");
        if !binary.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo).args(["build", "-p", "furrow-server"]).status().unwrap();
            assert!(status.success(), "building furrow-server failed");
        }
        let data_dir = tempfile::Builder::new().prefix("furrow-server-e2e-").tempdir().unwrap();
        let run = |args: &[&str], stdin: Option<&str>| {
            use std::io::Write;
            let mut child = Command::new(&binary).args(args).args(["--data-dir", data_dir.path().to_str().unwrap()]).stdin(Stdio::piped()).spawn().unwrap();
            if let Some(text) = stdin {
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            assert!(child.wait().unwrap().success(), "furrow-server {args:?} failed");
        };
        for (code, name) in Self::VILLAGES {
            run(&["village", "add", "--code", code, "--name", name], None);
        }
        run(
            &["assistant", "add", "--username", Self::ACCOUNT.0, "--password-stdin", "--village", Self::VILLAGES[0].0, "--village", Self::VILLAGES[1].0],
            Some(&format!("{}\n", Self::ACCOUNT.1)),
        );
        let mut server = PlatformServer { binary, data_dir, port: free_port(), admin_token: format!("admin-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)), process: None };
        server.start();
        server
    }

    /// The server's address.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) the server on its port.
    pub fn start(&mut self) {
        let child = Command::new(&self.binary)
            .args(["serve", "--data-dir", self.data_dir.path().to_str().unwrap(), "--listen", &format!("127.0.0.1:{}", self.port)])
            // The server takes its bootstrap token from the environment, never the command line.
            .env("FURROW_ADMIN_TOKEN", &self.admin_token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "furrow-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (the device is offline until it starts again).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Calls a platform endpoint (`/admin/v1/...`) with the admin token; returns the status
    /// and the answer's JSON (null when it has none).
    pub fn admin(&self, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.url()))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }
}

impl Drop for PlatformServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP relay in front of a server that counts the bytes the device sends and receives, so a
/// test can measure what a sync costs on the wire. It can be taken down and brought back on the
/// same port, so the device sees the network go away.
pub struct CountingRelay {
    /// The port the device connects to.
    pub port: u16,
    upstream: u16,
    /// Bytes from the device to the server.
    pub sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bytes from the server to the device.
    pub received: std::sync::Arc<std::sync::atomic::AtomicU64>,
    running: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl CountingRelay {
    /// A relay on a free port to the server on `upstream`, listening.
    pub fn new(upstream: u16) -> CountingRelay {
        let mut relay = CountingRelay {
            port: free_port(),
            upstream,
            sent: Default::default(),
            received: Default::default(),
            running: None,
        };
        relay.start();
        relay
    }

    /// The address the device uses.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Listens (again) on the relay's port.
    pub fn start(&mut self) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let (flag, upstream, sent, received) = (Arc::clone(&running), self.upstream, Arc::clone(&self.sent), Arc::clone(&self.received));
        std::thread::spawn(move || {
            while flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                        let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream, counter: Arc<std::sync::atomic::AtomicU64>, open: Arc<AtomicBool>| {
                            std::thread::spawn(move || {
                                let mut buffer = vec![0u8; 64 * 1024];
                                from.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                                loop {
                                    match from.read(&mut buffer) {
                                        Ok(0) => break,
                                        Ok(count) => {
                                            counter.fetch_add(count as u64, Ordering::SeqCst);
                                            if std::io::Write::write_all(&mut to, &buffer[..count]).is_err() {
                                                break;
                                            }
                                        }
                                        Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                                            if !open.load(Ordering::SeqCst) {
                                                break;
                                            }
                                        }
                                        Err(_) => break,
                                    }
                                }
                                let _ = to.shutdown(std::net::Shutdown::Write);
                            });
                        };
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), Arc::clone(&sent), Arc::clone(&flag));
                        pipe(server, client, Arc::clone(&received), Arc::clone(&flag));
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        });
        self.running = Some(running);
    }

    /// Stops listening and drops every open connection: the device sees no network.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.store(false, std::sync::atomic::Ordering::SeqCst);
            // The accept loop and the pipes notice within their polling interval.
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Bytes sent by the device so far.
    pub fn sent_bytes(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Bytes received by the device so far.
    pub fn received_bytes(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
