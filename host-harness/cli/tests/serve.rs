//! `bbdc serve` as an operator runs it and as hostile clients meet it: the real binary over real
//! TCP, killed with SIGKILL mid-burst, stopped with SIGTERM, starved of file descriptors, held
//! open by idle clients, and sent oversized headers and stalled bodies.

use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
#[path = "../../../tests/support/reference.rs"]
mod reference;
mod serving;

use serving::*;

/// (pull requests, review rows) in the database.
fn stored(db: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    (
        count("SELECT COUNT(*) FROM pull_requests"),
        count("SELECT COUNT(*) FROM reviews"),
    )
}

/// Kills (or stops) serve mid-burst, restarts it, resends what got no 2xx, and checks that every
/// delivery is stored exactly once: one review row per delivery, one row per pull request.
fn interrupted_burst(signal: &str, trials: u32) {
    let cache = tempfile::tempdir().unwrap();
    for trial in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("serve.sqlite");
        let items = burst(trial, 200, 40);
        let serve = start(&db, cache.path(), &[], None);
        let addr = serve.addr;
        let pid = serve.child.id().to_string();
        let delay = Duration::from_millis(fastrand::u64(20..400));
        let killer = std::thread::spawn({
            let signal = signal.to_owned();
            move || {
                std::thread::sleep(delay);
                // The shell's own `kill`: no procps needed.
                Command::new("sh")
                    .args(["-c", &format!("kill -{signal} {pid}")])
                    .status()
                    .expect("kill runs");
            }
        });
        let answered = send_all(addr, &items, 8);
        killer.join().unwrap();
        let mut serve = serve;
        let status = serve.child.wait().expect("serve ends");
        if signal == "TERM" {
            assert!(
                status.success(),
                "SIGTERM drains and exits 0: {status:?}\n{}",
                serve.log.lock().unwrap()
            );
        }
        drop(serve);
        let (_, reviews) = stored(&db);
        assert!(
            reviews >= answered.len() as u64,
            "trial {trial}: {} deliveries were answered 2xx but only {reviews} stored",
            answered.len()
        );
        // Bitbucket resends what got no 2xx.
        let again: Vec<_> = items
            .iter()
            .filter(|(id, _, _)| !answered.contains(id))
            .cloned()
            .collect();
        let restarted = start(&db, cache.path(), &[], None);
        let resent = send_all(restarted.addr, &again, 4);
        assert_eq!(resent.len(), again.len(), "every resend is answered 2xx");
        drop(restarted);
        assert_eq!(
            stored(&db),
            (40, 200),
            "trial {trial} ({signal} after {delay:?}, {} answered before): every pull request \
             once and every review event exactly once",
            answered.len()
        );
    }
}

#[test]
fn sigkill_mid_burst_loses_nothing_once_unanswered_deliveries_are_resent() {
    interrupted_burst("KILL", 4);
}

#[test]
fn sigterm_drains_deliveries_in_flight_and_exits_cleanly() {
    interrupted_burst("TERM", 2);
}

#[test]
fn idle_connections_are_closed_and_a_file_descriptor_limit_does_not_stop_serve() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.sqlite");
    let serve = start(
        &db,
        dir.path(),
        &["--idle-timeout", "1s", "--body-timeout", "1s"],
        Some(64),
    );
    let addr = serve.addr;
    assert!(healthy(addr));

    // An idle connection is closed after the idle timeout.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).expect("closed, not timed out");
    assert_eq!(n, 0, "the server closed the idle connection");
    assert!(started.elapsed() < Duration::from_secs(8));

    // More idle connections than file descriptors: accept fails for a while, then recovers.
    let crowd: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    drop(crowd);
    let recovered = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        healthy(addr)
    });
    let mut serve = serve;
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "serve is still running\n{}",
        serve.log.lock().unwrap()
    );
    assert!(recovered, "serve answers again once descriptors are free");

    // A body that never arrives is answered 408 after the body timeout.
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Event-Key: pr:opened\r\n\
         X-Hub-Signature: sha256={}\r\nContent-Length: 1000\r\n\r\n",
        "0".repeat(64)
    );
    let answer = request(addr, &head, b"{\"partial\":");
    assert_eq!(answer.map(|(s, _)| s), Some(408));
}

#[test]
fn an_oversized_request_id_is_refused_and_logged_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.sqlite");
    let serve = start(&db, dir.path(), &[], None);
    let addr = serve.addr;
    let before = serve.log_len();
    let id = "r".repeat(300_000);
    for _ in 0..5 {
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Event-Key: pr:opened\r\n\
             X-Request-Id: {id}\r\nContent-Length: 2\r\n\r\n"
        );
        let (status, text) = request(addr, &head, b"{}").expect("answered");
        assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
        assert!(
            text.contains("invalid_request_id"),
            "{}",
            &text[..text.len().min(300)]
        );
        assert!(text.len() < 4096, "the answer does not echo the id");
    }
    std::thread::sleep(Duration::from_millis(200));
    let logged = serve.log_len() - before;
    assert!(logged < 5 * 1024, "5 refusals wrote {logged} bytes of log");
    let (body, sig) = delivery(1, 1);
    assert_eq!(post(addr, "ok-1", &body, &sig), Some(200));
    let resp: Value = {
        let (body, sig) = delivery(1, 1);
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Event-Key: pr:reviewer:approved\r\n\
             X-Request-Id: ok-1\r\nX-Hub-Signature: {sig}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (_, text) = request(addr, &head, &body).expect("answered");
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap_or(Value::Null)
    };
    assert_eq!(resp["result"], "duplicate", "{resp}");
}

#[test]
fn connections_past_the_cap_wait_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.sqlite");
    let serve = start(
        &db,
        dir.path(),
        &["--max-connections", "2", "--idle-timeout", "60s"],
        None,
    );
    let addr = serve.addr;
    let first = TcpStream::connect(addr).unwrap();
    let _second = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(healthy(addr));
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(1)).is_err(),
        "a third connection is not served while two hold the cap"
    );
    drop(first);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(15)),
        Ok(true),
        "it is served once a slot frees"
    );
}
