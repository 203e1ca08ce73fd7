//! Hello world as a standard `wasi:http/proxy` component, for `wasmtime serve`.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("stream");
        stream
            .blocking_write_and_flush(b"Hello, world!")
            .expect("write");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish");
    }
}

wasi::http::proxy::export!(Hello);
