//! The operator web console: one page at `/` and its assets under
//! `/console/...`, built into the binary (sources in `ops/console/`).
//!
//! The page works offline: every byte it needs comes from this listener, and
//! the `Content-Security-Policy` sent with it allows nothing but `'self'`, so a
//! browser refuses any other origin (no CDN, no fonts, no beacons). It talks
//! to the same bearer-token API as every other client, adding
//! `X-Keel-Client: web` so actions are recorded as the console's.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::config::HttpConfig;

/// The policy sent with the page and its assets: only this origin, no
/// framing, no `<base>` rewriting, no form posts anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// A file the console serves: its name under `/console/`, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../../console/index.html");

/// Everything under `/console/`. The chart library is TradingView's
/// Lightweight Charts (Apache-2.0), its standalone production build vendored
/// from npm with its LICENSE and NOTICE beside it.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/app.js"),
    },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../console/app.css") },
    Asset {
        name: "lightweight-charts.standalone.production.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/vendor/lightweight-charts.standalone.production.js"),
    },
    Asset {
        name: "LICENSE-lightweight-charts",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../console/vendor/LICENSE-lightweight-charts"),
    },
    Asset {
        name: "NOTICE-lightweight-charts",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../console/vendor/NOTICE-lightweight-charts"),
    },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("../../console/favicon.svg") },
];

/// `body` with the console's security headers. `no-cache` makes a browser
/// revalidate, so a new binary's page is never mixed with old assets.
fn serve(content_type: &str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// `GET /`: the page. It holds no data; everything comes from the API once
/// the operator has entered the token.
pub async fn index() -> HttpResponse {
    serve("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`: one of the built-in assets, or 404.
pub async fn asset(req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("file").unwrap_or_default();
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a.content_type, a.body),
        None => HttpResponse::NotFound().json(json!({ "error": "no such console file" })),
    }
}

/// The listener as `/api/v1/status` reports it under `listener`, so the
/// console can show a listener that serves plain HTTP beyond this machine:
/// `{"listen","tls","loopback","warning"}` (`warning` null when all is well).
/// A host name other than `localhost` counts as beyond loopback.
pub fn listener_status(http: &HttpConfig) -> Value {
    let tls = http.tls_cert.is_some() && http.tls_key.is_some();
    let addr = http.listen.parse::<std::net::SocketAddr>().ok();
    let loopback = match addr {
        Some(a) => a.ip().is_loopback(),
        None => http.listen.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    };
    let warning = match addr {
        Some(a) => super::tls::plain_http_warning(a, tls),
        None if !loopback && !tls => Some(format!(
            "the HTTP API listens on {}, beyond this machine, without TLS: the API token crosses the network in clear",
            http.listen
        )),
        None => None,
    };
    json!({ "listen": http.listen, "tls": tls, "loopback": loopback, "warning": warning })
}

/// The console's routes, added to the listener's (outside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::get("/", index)).service(super::get("/console/{file}", asset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_status_flags_plain_http_beyond_loopback() {
        let cases = [
            ("127.0.0.1:9184", false, true, false),
            ("localhost:9184", false, true, false),
            ("0.0.0.0:9184", false, false, true),
            ("0.0.0.0:9184", true, false, false),
            ("keel.example:9184", false, false, true),
        ];
        for (listen, tls, loopback, warned) in cases {
            let mut http: HttpConfig = toml::from_str("").expect("defaults");
            http.listen = listen.into();
            if tls {
                http.tls_cert = Some("c.pem".into());
                http.tls_key = Some("k.pem".into());
            }
            let v = listener_status(&http);
            assert_eq!(v["loopback"], loopback, "{listen}");
            assert_eq!(v["tls"], tls, "{listen}");
            assert_eq!(v["warning"].is_string(), warned, "{listen}: {v}");
        }
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        let page = std::str::from_utf8(INDEX).expect("utf-8");
        let mut named = 0;
        for part in page.split("/console/").skip(1) {
            let name = part.split(['"', '\'', '?']).next().unwrap_or_default();
            assert!(ASSETS.iter().any(|a| a.name == name), "index.html names /console/{name}, which is not served");
            named += 1;
        }
        assert!(named >= 3, "the page loads its script, style and chart library from /console/");
    }
}
