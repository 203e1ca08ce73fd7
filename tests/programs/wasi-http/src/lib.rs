//! A standard `wasi:http/proxy` component, built with the `wasi` crate as one would for
//! `wasmtime serve`: it imports nothing of Flagon's. The path picks what it does:
//!
//! - `/`: `hello from rust wasi:http`
//! - `/headers`: the request as JSON (method, path with query, scheme, authority, headers)
//! - `/echo`: the request body back, with its content type
//! - `/fetch?url=U`: an outgoing GET of `U`; `200` with `<status>\n<body>`, or `502` and the error
//! - `/stream?kib=N`: `N` KiB written in 4 KiB chunks after the response is set
//! - `/trap`: panics after setting the response head
//! - `/spin`: loops forever
//! - `/no-response`: returns without setting a response
//! - `/bad-header`: a redirect to another site, which the host must refuse

use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Proxy;

impl wasi::exports::http::incoming_handler::Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        match path {
            "/" => respond(out, 200, "text/plain", b"hello from rust wasi:http"),
            "/headers" => {
                let headers: Vec<String> = request
                    .headers()
                    .entries()
                    .into_iter()
                    .map(|(n, v)| format!("[{},{}]", json(&n), json(&String::from_utf8_lossy(&v))))
                    .collect();
                let scheme = match request.scheme() {
                    Some(Scheme::Http) => "http".to_string(),
                    Some(Scheme::Https) => "https".to_string(),
                    Some(Scheme::Other(s)) => s,
                    None => String::new(),
                };
                let body = format!(
                    "{{\"method\":{},\"path\":{},\"scheme\":{},\"authority\":{},\"headers\":[{}]}}",
                    json(&method(&request.method())),
                    json(&path_with_query),
                    json(&scheme),
                    json(&request.authority().unwrap_or_default()),
                    headers.join(",")
                );
                respond(out, 200, "application/json", body.as_bytes());
            }
            "/echo" => {
                let content_type = request
                    .headers()
                    .get("content-type")
                    .into_iter()
                    .next()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_else(|| "application/octet-stream".into());
                let body = read_all(&request);
                respond(out, 200, &content_type, &body);
            }
            "/fetch" => {
                let url = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("url="))
                    .map(percent_decode)
                    .unwrap_or_default();
                match fetch(&url) {
                    Ok((status, body)) => {
                        let mut text = format!("{status}\n").into_bytes();
                        text.extend_from_slice(&body);
                        respond(out, 200, "text/plain", &text);
                    }
                    Err(e) => respond(out, 502, "text/plain", e.as_bytes()),
                }
            }
            "/stream" => {
                let kib: usize = query
                    .strip_prefix("kib=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let response = OutgoingResponse::new(content_type("application/octet-stream"));
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = body.write().expect("stream");
                let chunk = [b'x'; 4096];
                for _ in 0..kib.div_ceil(4) {
                    if stream.blocking_write_and_flush(&chunk).is_err() {
                        return;
                    }
                }
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "/trap" => {
                let response = OutgoingResponse::new(content_type("text/plain"));
                let _body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                panic!("the wasi:http test component panics on purpose");
            }
            "/spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/no-response" => {
                // Returning without calling `ResponseOutparam::set` (the outparam is dropped).
                drop(out);
            }
            "/bad-header" => {
                // An open redirect, which the host's response checks refuse.
                let headers = content_type("text/plain");
                headers
                    .append("location", b"https://evil.example/")
                    .expect("header");
                let response = OutgoingResponse::new(headers);
                response.set_status_code(302).expect("status");
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                write_body(body, b"elsewhere");
            }
            _ => respond(
                out,
                404,
                "text/plain",
                b"no such path in the wasi:http test component",
            ),
        }
    }
}

fn content_type(value: &str) -> Fields {
    Fields::from_list(&[("content-type".to_string(), value.as_bytes().to_vec())])
        .expect("valid header")
}

fn respond(out: ResponseOutparam, status: u16, content: &str, body: &[u8]) {
    let response = OutgoingResponse::new(content_type(content));
    response.set_status_code(status).expect("status");
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    write_body(outgoing, body);
}

fn write_body(body: OutgoingBody, bytes: &[u8]) {
    let stream = body.write().expect("stream");
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write");
    }
    drop(stream);
    OutgoingBody::finish(body, None).expect("finish");
}

fn read_all(request: &IncomingRequest) -> Vec<u8> {
    let Ok(body) = request.consume() else {
        return Vec::new();
    };
    let stream = body.stream().expect("stream");
    let mut out = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        out.extend_from_slice(&chunk);
    }
    out
}

/// An outgoing GET of `url`, through `wasi:http/outgoing-handler`.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!("not an http(s) url: {url}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "body")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, bytes))
}

fn method(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

wasi::http::proxy::export!(Proxy);
