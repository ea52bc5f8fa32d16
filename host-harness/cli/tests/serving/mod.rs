//! Running `bbdc serve` in tests: start it (on a SQLite file or a PostgreSQL URL), and send it
//! signed deliveries over real TCP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SECRET: &str = "serve-test-secret";
pub const PATH: &str = "/webhooks/bitbucket_data_center";

/// A signed delivery approving pull request `pr` at `version`.
pub fn delivery(pr: u64, version: u32) -> (Vec<u8>, String) {
    crate::common::signed_approval(SECRET, pr, version)
}

/// A running `bbdc serve`, its address, and its stderr collected in the background.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

/// Starts `bbdc serve` on `db` with `extra` flags, under `ulimit -n` when `fd_limit` is set,
/// and waits until it listens.
pub fn start(db: &Path, cache: &Path, extra: &[&str], fd_limit: Option<u32>) -> Serve {
    let bin = env!("CARGO_BIN_EXE_bbdc");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--db".into(),
        db.display().to_string(),
        "--secret-env".into(),
        "SERVE_TEST_SECRET".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = match fd_limit {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin)
                .args(&args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(&args);
            c
        }
    };
    let mut child = cmd
        .env("SERVE_TEST_SECRET", SECRET)
        .env("BBDC_CACHE_DIR", cache)
        .env("BBDC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bbdc serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1)
                && let Some(addr) = rest.split('/').next().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("serve did not start: {}", log.lock().unwrap()));
    Serve { child, addr, log }
}

impl Serve {
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the status, or `None` when no answer came.
pub fn request(addr: SocketAddr, head: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    tcp.write_all(head.as_bytes()).ok()?;
    tcp.write_all(body).ok()?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

/// POSTs a delivery with request id `id`; the status, or `None` when no answer came.
pub fn post(addr: SocketAddr, id: &str, body: &[u8], sig: &str) -> Option<u16> {
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         X-Event-Key: pr:reviewer:approved\r\nX-Request-Id: {id}\r\nX-Hub-Signature: {sig}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    request(addr, &head, body).map(|(s, _)| s)
}

pub fn healthy(addr: SocketAddr) -> bool {
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    request(addr, &head, b"").is_some_and(|(s, _)| s == 200)
}

/// The burst: `n` deliveries over `prs` pull requests, each a distinct review event.
pub fn burst(trial: u32, n: u32, prs: u64) -> Vec<(String, Vec<u8>, String)> {
    (0..n)
        .map(|i| {
            let (body, sig) = delivery(u64::from(i) % prs + 1, i + 1);
            (format!("t{trial}-d{i}"), body, sig)
        })
        .collect()
}

/// Sends every delivery from `senders` threads; returns the ids answered 2xx.
pub fn send_all(
    addr: SocketAddr,
    items: &[(String, Vec<u8>, String)],
    senders: usize,
) -> Vec<String> {
    let next = Mutex::new(0usize);
    let answered = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..senders {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some((id, body, sig)) = items.get(i) else {
                        return;
                    };
                    if post(addr, id, body, sig).is_some_and(|s| (200..300).contains(&s)) {
                        answered.lock().unwrap().push(id.clone());
                    }
                }
            });
        }
    });
    answered.into_inner().unwrap()
}
