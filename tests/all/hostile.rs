//! Guests that misbehave are contained: the request fails with the right 5xx, nothing leaks, and
//! the host and other requests carry on.

use std::time::{Duration, Instant};

use crate::app_manifest;
use crate::harness::{BinServer, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_that_never_finish_are_stopped_while_others_are_served() {
    let s = TestServer::start(&app_manifest("")).await; // hostile timeout = 1s
    let addr = s.addr;
    // A loop in guest code, a loop of host calls, and a wait inside the host.
    for route in ["/h/spin", "/h/spin-host", "/h/sleep"] {
        let started = Instant::now();
        let looping = tokio::spawn(async move {
            let r = crate::harness::send(addr, crate::harness::Req::new("GET", route)).await;
            (r, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Two spinning guests on a two-core machine still leave room for everyone else.
        for _ in 0..5 {
            let t = Instant::now();
            let r = s.get("/h/ok").await;
            assert_eq!((r.status, r.text().as_str()), (200, "still here"));
            assert!(
                t.elapsed() < Duration::from_millis(800),
                "{route}: ok took {:?}",
                t.elapsed()
            );
        }
        let (r, took) = looping.await.unwrap();
        assert_eq!(r.status, 504, "{route}: {}", r.text());
        assert!(
            r.text().starts_with("504 Gateway Timeout\nrequest id: "),
            "{}",
            r.text()
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{route}: {took:?}"
        );
    }
}

#[tokio::test]
async fn traps_are_500_with_the_request_id_only() {
    let s = TestServer::start(&app_manifest("")).await;
    for route in [
        "/h/panic",
        "/h/recurse",
        "/h/bomb",
        "/h/bad-header",
        "/h/bad-status",
    ] {
        let r = s.get(route).await;
        assert_eq!(r.status, 500, "{route}");
        let id = r.header("x-request-id").unwrap();
        assert_eq!(
            r.text(),
            format!("500 Internal Server Error\nrequest id: {id}\n"),
            "{route}"
        );
        assert!(r.header("x-injected").is_none() && r.header("set-cookie").is_none());
    }
    // The host is unharmed and serves the same component again.
    assert_eq!(s.get("/h/ok").await.status, 200);
}

#[tokio::test]
async fn host_owned_headers_from_guests_are_ignored() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/h/hop-by-hop").await;
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
    assert_eq!(r.header("content-length"), Some("4"));
    assert!(r.header("transfer-encoding").is_none());
    assert!(r.header("connection").is_none());
}

#[tokio::test]
async fn large_responses_are_delivered() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/h/big").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 8 << 20);
}

#[tokio::test]
async fn guests_see_no_environment_arguments_files_or_processes() {
    let s = TestServer::start(&app_manifest("")).await;
    let r = s.get("/h/probe").await;
    assert_eq!(
        r.text(),
        "env=0 args=0 passwd=false environ=false cwd=false spawn=false"
    );
}

#[tokio::test]
async fn no_free_instance_slot_is_503() {
    let s = TestServer::start(&app_manifest("max_instances = 1")).await;
    let addr = s.addr;
    let spinning = tokio::spawn(crate::harness::send(
        addr,
        crate::harness::Req::new("GET", "/h/spin"),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.get("/h/ok").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(spinning.await.unwrap().status, 504);
    assert_eq!(s.get("/h/ok").await.status, 200);
}

/// Guest stdout, stderr (panic messages included) and log calls become log lines attributed to
/// the component and request, with secrets redacted and control characters escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_is_logged_redacted_and_escaped() {
    let mut server = BinServer::start(&app_manifest("")).await;
    let r = crate::harness::send(
        server.addr,
        crate::harness::Req::new("GET", "/h/print")
            .header("authorization", "Bearer tok_0123456789abcdef")
            .header("cookie", "sid=cookie-value-0123456789; theme=dark"),
    )
    .await;
    assert_eq!(r.text(), "printed");
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(server.get("/h/print-pem").await.text(), "printed");
    assert_eq!(server.get("/h/panic").await.status, 500);
    assert!(
        server
            .wait_for_log("guest panicked with a secret", Duration::from_secs(5))
            .await
    );
    let _ = server.child.kill();
    let (_, log) = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("hello stdout"))
        .expect("stdout line");
    assert!(
        line.contains("hello stdout [redacted]") && line.contains("stream=\"stdout\""),
        "{line}"
    );
    assert!(
        line.contains("component=hostile") && line.contains(&id),
        "{line}"
    );
    assert!(log.contains("the token is [redacted]"), "{log}");
    assert!(!log.contains("s3cr3t"), "{log}");
    // The request's own credentials are redacted wherever the guest logs them.
    assert!(log.contains("request headers:"), "{log}");
    assert!(log.contains("auth=[redacted]"), "{log}");
    for credential in ["tok_0123456789abcdef", "cookie-value-0123456789"] {
        assert!(!log.contains(credential), "{log}");
    }
    // Secrets are redacted before lines are split, escaped or cut: a multi-line key, and a
    // secret where the 4 KiB cut of a long line falls.
    for part in [
        "MIIBVQIBADANBgkqhkiG9w0BAQEFAASC",
        "AT8wggE7AgEAAkEAq7BFUpkGp3+",
        "s3c",
    ] {
        assert!(!log.contains(part), "{part} leaked");
    }
    assert!(log.contains("pem: [redacted]"), "{log}");
    // The forged line stays inside one escaped stderr line.
    assert!(log.contains("to stderr"), "{log}");
    assert!(
        log.contains(r"INFO flagon::access: forged line \u{1b}[31mred"),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("INFO flagon::access: forged")),
        "{log}"
    );
}

/// Hostile clients: no byte of a request can start a log line of its own. Every line the host
/// writes while answering these starts with the formatter's timestamp, and the forged text
/// shows up escaped inside the line that quotes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_byte_forges_a_log_line() {
    use crate::harness::{Req, send};
    let forged = "INFO flagon::access: forged";
    let server = BinServer::start(&app_manifest("")).await;
    // A form field whose decoded name carries a newline (and a bad value, so it is logged).
    let body = "a%0D%0AINFO%20flagon%3A%3Aaccess%3A%20forged%E2%80%A8x=%FF";
    let r = send(
        server.addr,
        Req::new("POST", "/form")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await;
    assert_eq!(r.status, 400);
    // The same through a multipart part name.
    let multipart = "--b\r\ncontent-disposition: form-data; name=\"x\"\r\n\r\n\r\n--b\r\ncontent-disposition: form-data; name=\"y\"\r\n\r\n\u{ff}\r\n";
    let _ = send(
        server.addr,
        Req::new("POST", "/form")
            .header("content-type", "multipart/form-data; boundary=b")
            .body(multipart),
    )
    .await;
    // Paths, queries and headers with encoded line breaks.
    let _ = server
        .get("/greet/a%0AINFO%20flagon::access:%20forged?x=%0A")
        .await;
    assert!(
        server
            .wait_for_log("bad form", Duration::from_secs(5))
            .await
    );
    let log = server.log();
    assert!(
        log.contains(r"a\r\nINFO flagon::access: forged\u{2028}x"),
        "{log}"
    );
    for line in log.lines() {
        let stamped = line.len() > 20
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[4] == b'-';
        assert!(
            stamped,
            "a log line without the formatter's timestamp: {line:?}\n{log}"
        );
        assert!(!line.contains('\u{2028}'), "{line:?}");
    }
    assert!(!log.lines().any(|l| l.starts_with(forged)), "{log}");
}

/// Memory bombs hit the per-instance limit; the host's own memory stays bounded however many
/// there are (measured on a separate `flagon serve` process).
#[tokio::test]
async fn memory_bombs_leave_host_memory_bounded() {
    let server = BinServer::start(&app_manifest("")).await;
    let warmup = server.get("/h/bomb").await;
    assert_eq!(warmup.status, 500);
    let before = server.rss_kib();
    for _ in 0..12 {
        assert_eq!(server.get("/h/bomb").await.status, 500);
    }
    let after = server.rss_kib();
    // Each bomb fills 32MiB; twelve of them retained would be 384MiB.
    assert!(
        after < before + 64 * 1024,
        "host RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(server.get("/h/ok").await.status, 200);
}

/// A granted directory is all a guest sees of the filesystem: `..`, symlinks out of it and
/// paths elsewhere fail; writes fail unless the grant says `write = true`.
#[tokio::test]
async fn granted_directories_cannot_be_escaped() {
    for write in [false, true] {
        let grant = if write {
            r#"{ path = "data", write = true }"#
        } else {
            r#""data""#
        };
        let text = format!(
            "[app]\nname = \"t\"\n[components.h]\nsource = {}\ngrants = {{ files = {{ \"/data\" = {grant} }} }}\n\
             [[routes]]\npath = \"/h/{{name}}\"\ncomponent = \"h\"\n",
            crate::harness::program(crate::programs::HOSTILE)
        );
        let m = crate::harness::TestManifest::with_files(
            &text,
            &[
                ("data/hello.txt", "hi"),
                ("data/sub/inner.txt", "inner"),
                ("secret.txt", "top secret"),
                ("outside/secret.txt", "top secret"),
            ],
        );
        let dir = m.dir.path();
        std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("data/link")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("data/dirlink")).unwrap();
        let s = TestServer::serve(m, flagon::LoadOptions::default()).await;
        let r = s.get("/h/files").await;
        let list = if write {
            "dirlink,hello.txt,link,new.txt,sub"
        } else {
            "dirlink,hello.txt,link,sub"
        };
        assert_eq!(
            r.text(),
            format!(
                "read=ok:hi sub=ok:inner parent=err escape=err link=err dirlink=err passwd=err environ=err write={write} list={list}"
            )
        );
        assert!(!r.text().contains("top secret"));
    }
}
