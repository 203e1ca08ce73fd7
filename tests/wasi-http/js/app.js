// A standard `wasi:http/proxy` component in JavaScript, the kind written for `wasmtime serve` or
// Spin, in componentize-js's fetch-event style (StarlingMonkey maps `wasi:http/incoming-handler`
// to the `fetch` event and `fetch()` to `wasi:http/outgoing-handler`). It uses no Flagon
// interface.
//
//   GET /              200 text/plain "hello from js wasi:http"
//   GET /headers       200 JSON: the request's method, path with query, scheme, authority and
//                      headers (as [name, value] pairs)
//   GET /fetch?url=U   an outgoing GET of U: 200 with "<status>\n<body>", or 502 with the error
//                      message if the request fails
//   anything else      404

async function handle(request) {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/":
      return new Response("hello from js wasi:http", { headers: { "content-type": "text/plain" } });
    case "/headers":
      return Response.json({
        method: request.method,
        path: url.pathname + url.search,
        scheme: url.protocol.replace(/:$/, ""),
        authority: url.host,
        headers: [...request.headers],
      });
    case "/fetch": {
      const target = url.searchParams.get("url") ?? "";
      try {
        const upstream = await fetch(target);
        const body = await upstream.text();
        return new Response(`${upstream.status}\n${body}`, { headers: { "content-type": "text/plain" } });
      } catch (e) {
        return new Response(e instanceof Error ? e.message : String(e), {
          status: 502,
          headers: { "content-type": "text/plain" },
        });
      }
    }
    default:
      return new Response("not found", { status: 404, headers: { "content-type": "text/plain" } });
  }
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
