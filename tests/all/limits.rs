//! Request limits: body size (413), header size and count (431), slow clients (slowloris).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::app_manifest;
use crate::harness::{Req, TestServer};

#[tokio::test]
async fn body_limits_per_server_and_route() {
    let s = TestServer::start(&app_manifest("max_body = \"64KiB\"")).await;
    let json = |n: usize| {
        Req::new("POST", "/echo")
            .header("content-type", "application/json")
            .body(format!(r#"{{"name":"{}","times":1}}"#, "a".repeat(n)))
    };
    assert_eq!(s.send(json(60_000)).await.status, 200);
    assert_eq!(s.send(json(70_000)).await.status, 413);
    // The route's own limit (16KiB) wins over the server's.
    let form = |n: usize| {
        Req::new("POST", "/form")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("name={}&times=1", "b".repeat(n)))
    };
    assert_eq!(s.send(form(10_000)).await.status, 200);
    assert_eq!(s.send(form(20_000)).await.status, 413);
}

#[tokio::test]
async fn chunked_body_past_the_limit_is_413() {
    let s = TestServer::start(&app_manifest("max_body = \"8KiB\"")).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut req =
        b"POST /inspect HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&[b'z'; 0x1000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&req).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_431() {
    let s = TestServer::start(&app_manifest(
        "max_header_bytes = \"8KiB\"\nmax_headers = 20",
    ))
    .await;
    let big = "v".repeat(10_000);
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let many: String = (0..30).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    stream
        .write_all(format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    // The server is still fine.
    assert_eq!(s.get("/").await.status, 200);
}

#[tokio::test]
async fn bad_framing_is_400_not_a_crash() {
    let s = TestServer::start(&app_manifest("")).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nabcde",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(
        head.starts_with("HTTP/1.1 400") || head.is_empty(),
        "{head}"
    );
    assert_eq!(s.get("/").await.status, 200);
}

/// A client that sends its request head a byte at a time, slower than the header-read timeout
/// allows, is cut off in time; so is one that connects and sends nothing, or half of the
/// HTTP/2 preface. Meanwhile other clients are served.
#[tokio::test]
async fn slowloris_connections_are_closed_in_time() {
    let s = TestServer::start(&app_manifest("")).await; // header_read_timeout = 1s
    let started = Instant::now();

    let silent = TcpStream::connect(s.addr).await.unwrap();
    let half_h2 = {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        c
    };
    let mut dribble = TcpStream::connect(s.addr).await.unwrap();
    let dribbler = tokio::spawn(async move {
        for b in b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: "
            .iter()
            .chain(std::iter::repeat(&b'a'))
        {
            if dribble.write_all(&[*b]).await.is_err() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(10) {
                panic!("slow connection still open after 10s");
            }
        }
        unreachable!()
    });

    assert_eq!(s.get("/").await.status, 200, "others are served meanwhile");

    for (name, mut conn) in [("silent", silent), ("half HTTP/2 preface", half_h2)] {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name} connection still open after 5s"));
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "{name}: expected close, got {n:?}"
        );
    }
    let closed_at = dribbler.await.unwrap();
    let open_for = closed_at - started;
    assert!(
        open_for < Duration::from_secs(4),
        "dribbling client was allowed {open_for:?}"
    );
}

/// A client that sends its head but stalls in the body gets 408 and the connection is closed.
#[tokio::test]
async fn stalled_body_is_408() {
    let s = TestServer::start(&app_manifest("body_read_timeout = \"1s\"")).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"POST /inspect HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten..")
        .await
        .unwrap();
    let started = Instant::now();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Read a response head (up to the blank line) or whatever arrives before the peer closes.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A client that asks for a big response and never reads it is disconnected once a write has
/// waited `write_timeout`, and its connection slot goes to the next client.
#[tokio::test]
async fn clients_that_stop_reading_lose_their_connection() {
    let s = TestServer::start(&app_manifest("write_timeout = \"1s\"\nmax_connections = 1")).await;
    // A small receive buffer, so the 8 MiB response cannot all sit in kernel buffers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(s.addr).await.unwrap();
    stalled
        .write_all(b"GET /h/big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // The only slot is taken; the next client is served once the stalled one is cut off.
    let next = tokio::time::timeout(Duration::from_secs(20), s.get("/h/ok"))
        .await
        .expect("the stalled client's slot was freed");
    assert_eq!(next.status, 200);
    // What the stalled client gets is a response cut short, then the end of the connection.
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection was closed");
    assert!(got.len() < 8 << 20, "{} bytes", got.len());
}

/// A connection with no request for `idle_timeout` is closed, over HTTP/1 keep-alive and over
/// HTTP/2 (whose pings would otherwise keep it open forever), freeing its slot.
#[tokio::test]
async fn idle_connections_are_closed() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let s = TestServer::start(&app_manifest("idle_timeout = \"1s\"")).await;

    // HTTP/1: one request, then silence; the server closes the connection.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /h/ok HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle HTTP/1 connection was closed");

    // HTTP/2: the connection future ends once the server sends GOAWAY and closes.
    let io = TokioIo::new(TcpStream::connect(s.addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::get(format!("http://{}/h/ok", s.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let ended = tokio::time::timeout(Duration::from_secs(20), conn).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was closed");
}
